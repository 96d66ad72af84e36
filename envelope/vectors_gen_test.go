package envelope

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// rejectVectors derives the failing vectors from the valid ones. Each declares its expected error;
// the generator checks nothing against the code (TestVectors does that on the written file).
func rejectVectors(t *testing.T, valid map[string]vector) ([]vector, error) {
	r, ok1 := valid["randomized string with context"]
	d, ok2 := valid["deterministic string with context"]
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("base vectors missing")
	}
	rBin := decodeBinary(t, []byte(r.Text))
	rBody := r.Text[len(Prefix):]

	// from copies base and applies changes to the copy.
	from := func(base vector, name, errName string, change func(v *vector)) vector {
		v := base
		v.Name, v.Kind, v.Error, v.Mode, v.Plaintext = name, "reject", errName, "", ""
		change(&v)
		if errName == "malformed" || errName == "unsupported_version" {
			v.Header = nil
		} else if h, err := Parse([]byte(v.Text)); err == nil {
			v.Header = &h
		}
		return v
	}
	withBinary := func(mutate func(b []byte) []byte) func(v *vector) {
		return func(v *vector) { v.Text = string(encodeBinary(mutate(bytes.Clone(rBin)))) }
	}
	headerLen := headerFixedLen + int(rBin[2]) + 1

	var out []vector
	for _, base := range []vector{r, d} {
		m := strings.SplitN(base.Name, " ", 2)[0] // "randomized" or "deterministic"
		out = append(out,
			from(base, m+": wrong label", "authentication", func(v *vector) { v.Label = "tax_id" }),
			from(base, m+": wrong context", "authentication", func(v *vector) { v.Context = "tenant=globex" }),
			from(base, m+": missing context", "authentication", func(v *vector) { v.Context = "" }),
			from(base, m+": label/context boundary moved", "authentication", func(v *vector) {
				v.Label, v.Context = "ssnt", "enant=acme"
			}),
			from(base, m+": other data key under the same key id and version", "authentication", func(v *vector) {
				v.Key = "acme-v1-other-data-key"
			}),
			from(base, m+": key id mismatch", "key_mismatch", func(v *vector) { v.Key = "globex-v1" }),
			from(base, m+": key version mismatch", "key_mismatch", func(v *vector) { v.Key = "acme-v2" }),
			// globex-v1 holds the same data key bytes as acme-v1: only the AD stops this.
			from(base, m+": header rewritten to another key id, same data key", "authentication", func(v *vector) {
				v.Key, v.Text = "globex-v1", string(rewriteHeader(t, []byte(base.Text), "tenant-globex", 1))
			}),
			from(base, m+": header rewritten to another key version", "authentication", func(v *vector) {
				v.Key, v.Text = "acme-v2", string(rewriteHeader(t, []byte(base.Text), "tenant-acme", 2))
			}),
			from(base, m+": mode byte flipped", "authentication", func(v *vector) {
				b := decodeBinary(t, []byte(base.Text))
				b[1] = 3 - b[1]
				v.Text = string(encodeBinary(b))
			}),
			from(base, m+": last byte flipped", "authentication", func(v *vector) {
				b := decodeBinary(t, []byte(base.Text))
				b[len(b)-1] ^= 0x01
				v.Text = string(encodeBinary(b))
			}),
			from(base, m+": first ciphertext byte flipped", "authentication", func(v *vector) {
				b := decodeBinary(t, []byte(base.Text))
				b[headerLen] ^= 0x80
				v.Text = string(encodeBinary(b))
			}),
			from(base, m+": truncated by one byte", "authentication", func(v *vector) {
				b := decodeBinary(t, []byte(base.Text))
				v.Text = string(encodeBinary(b[:len(b)-1]))
			}),
			from(base, m+": extended by one zero byte", "authentication", func(v *vector) {
				v.Text = string(encodeBinary(append(decodeBinary(t, []byte(base.Text)), 0)))
			}),
		)
	}

	last := rBody[len(rBody)-1]
	lastVal := base64URLValues[last]
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	if len(rBody)%4 != 3 {
		return nil, fmt.Errorf("base vector body length %d: want 3 mod 4 for the padding cases", len(rBody))
	}
	out = append(out,
		from(r, "prefix missing", "malformed", func(v *vector) { v.Text = rBody }),
		from(r, "prefix only", "malformed", func(v *vector) { v.Text = Prefix }),
		from(r, "upper-case prefix", "malformed", func(v *vector) { v.Text = "RKMS:" + rBody }),
		from(r, "JSON quotes kept", "malformed", func(v *vector) { v.Text = `"` + r.Text + `"` }),
		from(r, "trailing newline", "malformed", func(v *vector) { v.Text = r.Text + "\n" }),
		from(r, "trailing space", "malformed", func(v *vector) { v.Text = r.Text + " " }),
		from(r, "line break inside", "malformed", func(v *vector) { v.Text = r.Text[:40] + "\n" + r.Text[40:] }),
		from(r, "padded base64", "malformed", func(v *vector) { v.Text = r.Text + "=" }),
		from(r, "standard base64 alphabet", "malformed", func(v *vector) { v.Text = r.Text[:20] + "+" + r.Text[21:] }),
		from(r, "non-canonical last character", "malformed", func(v *vector) {
			v.Text = r.Text[:len(r.Text)-1] + string(alphabet[lastVal|1])
		}),
		from(r, "base64 length 1 mod 4", "malformed", func(v *vector) { v.Text = r.Text[:len(r.Text)-2] }),
		from(r, "format version 2", "unsupported_version", withBinary(func(b []byte) []byte { b[0] = 2; return b })),
		from(r, "format version 0", "unsupported_version", withBinary(func(b []byte) []byte { b[0] = 0; return b })),
		from(r, "mode 3", "unsupported_version", withBinary(func(b []byte) []byte { b[1] = 3; return b })),
		from(r, "key id with a space", "malformed", withBinary(func(b []byte) []byte { b[3+6] = ' '; return b })),
		from(r, "key id length beyond the data", "malformed", withBinary(func(b []byte) []byte { b[2] = 255; return b })),
		from(r, "randomized ciphertext shorter than nonce and tag plus one byte", "malformed", withBinary(func(b []byte) []byte {
			return b[:headerLen+gcmOverhead]
		})),
		from(d, "deterministic ciphertext shorter than tag plus one byte", "malformed", func(v *vector) {
			b := decodeBinary(t, []byte(d.Text))
			v.Text = string(encodeBinary(b[:headerLen+sivOverhead]))
		}),
	)
	if last == alphabet[lastVal|1] {
		return nil, fmt.Errorf("base vector already ends in an odd character; pick another")
	}
	return out, nil
}
