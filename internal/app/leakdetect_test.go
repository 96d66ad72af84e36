package app

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// Piece lengths the leak search looks for, per form. By chance, a random piece of these sizes
// occurs in megabytes of logs with a probability below 2^-40: raw 8 bytes (64 bits), 16 hex
// characters (64 bits), 12 base64 characters (72 bits).
const (
	rawPiece = 8
	hexPiece = 16
	b64Piece = 12
)

// leakDetector finds any piece of a key in a text, whatever the encoding the piece was printed
// in: raw, JSON-escaped, hex (either case) or base64 (standard or URL alphabet, padded or not),
// and whatever byte of the key the piece starts at. A detector that only looks for whole keys
// misses a log line that prints half a key, or a key cut by a line length limit.
type leakDetector struct {
	pieces map[int]map[string]string // piece length -> piece -> "key NAME (FORM)"
}

func newLeakDetector(keys map[string][]byte) *leakDetector {
	d := &leakDetector{pieces: map[int]map[string]string{}}
	for name, k := range keys {
		d.addWindows(rawPiece, string(k), name, "raw")
		d.addJSONPieces(k, name)
		d.addWindows(hexPiece, hex.EncodeToString(k), name, "hex")
		d.addWindows(hexPiece, strings.ToUpper(hex.EncodeToString(k)), name, "HEX")
		// A piece starting at byte i encodes like the key from byte i%3 on: its base64 is a
		// substring of one of these three encodings, apart from its last group.
		for s := range 3 {
			for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
				e := enc.EncodeToString(k[s:])
				d.addWindows(b64Piece, e[:len(e)-4], name, fmt.Sprintf("base64 from byte %d", s))
			}
		}
	}
	return d
}

func (d *leakDetector) addWindows(n int, s, name, form string) {
	m := d.pieces[n]
	if m == nil {
		m = map[string]string{}
		d.pieces[n] = m
	}
	for i := 0; i+n <= len(s); i++ {
		m[s[i:i+n]] = "key " + name + " (" + form + ")"
	}
}

// addJSONPieces adds the pieces of k as a JSON string shows it (slog's JSON handler, an error
// body): runs of rawPiece escape units (a character, or an escape such as \u0007) that each
// stand for one byte. Bytes that are not valid UTF-8 become \ufffd and say nothing about the
// key, so no piece spans one; a run of those would match any key.
func (d *leakDetector) addJSONPieces(k []byte, name string) {
	for _, html := range []bool{true, false} {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(html)
		_ = enc.Encode(string(k))
		units := jsonUnits(strings.Trim(strings.TrimSpace(b.String()), `"`))
		// A window stands for rawPiece bytes of the key or more: a character unit stands for
		// its UTF-8 bytes (1 to 4), so counting units would miss a piece of multi-byte
		// characters, such as 10 key bytes that show as 7 characters.
		for i := range units {
			j, n := i, 0
			for ; j < len(units) && n < rawPiece; j++ {
				n += unitBytes(units[j])
			}
			if n < rawPiece {
				break
			}
			w := units[i:j]
			if slices.Contains(w, `\ufffd`) {
				continue
			}
			piece := strings.Join(w, "")
			d.addWindows(len(piece), piece, name, "JSON-escaped")
		}
	}
}

// jsonUnits splits the inside of a JSON string into escape sequences and characters.
// unitBytes is how many bytes of the encoded string a unit of [jsonUnits] stands for: an
// escape one (a control character, or <, > and & escaped for HTML), but \u2028 and \u2029
// three; a character its UTF-8 length.
func unitBytes(u string) int {
	switch {
	case u == `\u2028` || u == `\u2029`:
		return 3
	case strings.HasPrefix(u, `\`):
		return 1
	}
	return len(u)
}

func jsonUnits(s string) []string {
	var out []string
	for i := 0; i < len(s); {
		_, n := utf8.DecodeRuneInString(s[i:])
		if s[i] == '\\' {
			n = 2
			if i+1 < len(s) && s[i+1] == 'u' {
				n = 6
			}
		}
		n = min(n, len(s)-i)
		out = append(out, s[i:i+n])
		i += n
	}
	return out
}

// find returns what the first piece of a key found in text belongs to.
func (d *leakDetector) find(text string) (string, bool) {
	for n, m := range d.pieces {
		for i := 0; i+n <= len(text); i++ {
			if what, ok := m[text[i:i+n]]; ok {
				return fmt.Sprintf("%s at offset %d: %q", what, i, text[i:i+n]), true
			}
		}
	}
	return "", false
}

// leakedPieces are pieces of k as a careless log line or error could print them.
func leakedPieces(k []byte) map[string]string {
	// The JSON-escaped piece starts at the first run of 10 bytes that are valid UTF-8 (there is
	// always one here: leakTestKey makes sure).
	start := validRun(k, 10)
	esc, _ := json.Marshal(string(k[start : start+10]))
	return map[string]string{
		"whole key, std base64":    base64.StdEncoding.EncodeToString(k),
		"whole key, hex":           hex.EncodeToString(k),
		"raw bytes 9..19":          string(k[9:19]),
		"JSON-escaped 10 bytes":    strings.Trim(string(esc), `"`),
		"hex of bytes 5..14":       hex.EncodeToString(k[5:14]),
		"HEX of bytes 20..31":      strings.ToUpper(hex.EncodeToString(k[20:])),
		"base64 of bytes 7..22":    base64.StdEncoding.EncodeToString(k[7:22]),
		"base64url of bytes 1..14": base64.RawURLEncoding.EncodeToString(k[1:14]),
		"base64 of bytes 2..14":    base64.StdEncoding.EncodeToString(k[2:14]),
		"first half, base64url":    base64.URLEncoding.EncodeToString(k[:16]),
		"last half, hex":           hex.EncodeToString(k[16:]),
		"%x of the first 12 bytes": fmt.Sprintf("%x", k[:12]),
		"%X of bytes 4..13":        fmt.Sprintf("%X", k[4:13]),
	}
}

// TestLeakDetector is the leak search's own test: every piece of a key, in every form, is
// found inside a text, and nothing is found for a key the text does not hold.
func TestLeakDetector(t *testing.T) {
	k, other := leakTestKey(), leakTestKey()
	d := newLeakDetector(map[string][]byte{"k": k})
	dOther := newLeakDetector(map[string][]byte{"other": other})
	for name, piece := range leakedPieces(k) {
		text := `{"level":"INFO","msg":"x` + piece + `y","n":1}` + "\n"
		if _, ok := d.find(text); !ok {
			t.Errorf("%s not found in %q", name, text)
		}
		if what, ok := dOther.find(text); ok {
			t.Errorf("%s: found %s, a key the text does not hold", name, what)
		}
	}
}

// leakTestKey is a random key with a run of 10 bytes that are valid UTF-8 (printable ASCII
// here), so that its JSON-escaped form holds a piece to find.
func leakTestKey() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	for i := 11; i < 21; i++ {
		k[i] = ' ' + k[i]%94
	}
	return k
}

// validRun returns where the first run of n bytes of valid UTF-8 without U+FFFD starts in k,
// or -1.
func validRun(k []byte, n int) int {
	for i := 0; i+n <= len(k); i++ {
		if utf8.Valid(k[i:i+n]) && !bytes.ContainsRune(k[i:i+n], utf8.RuneError) {
			return i
		}
	}
	return -1
}
