package extproc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/extproc/jsonfield"
)

// transformer seals and opens the selected fields of one body. It lives for one body only: the
// key lookups it remembers are not a cache across requests (the keyring caches).
type transformer struct {
	keys     Keys
	phase    phase
	mode     envelope.Mode
	keyID    string
	ops      map[*jsonfield.Selector]op
	current  *envelope.Key
	versions map[uint32]envelope.Key
}

// transform rewrites body with jsonfield.Rewrite. It returns the new body and how many values
// were sealed or opened (0: the body is unchanged). Key lookups are bounded by timeout.
func (s *Server) transform(ctx context.Context, ph phase, pol *policy, fs *fieldSet, keyID string, body []byte) ([]byte, int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.KeyTimeout)
	defer cancel()
	t := &transformer{keys: s.keys, phase: ph, mode: pol.mode, keyID: keyID, ops: fs.ops}
	changed, sealed := 0, 0
	out, _, err := fs.plan.Rewrite(make([]byte, 0, len(body)+len(body)/2+256), body,
		func(f *jsonfield.Field, raw []byte) ([]byte, error) {
			var repl []byte
			var err error
			switch t.ops[f.Selector] {
			case opEncrypt:
				repl, err = t.seal(ctx, f, raw)
			case opDecrypt:
				repl, err = t.open(ctx, f, raw)
			default:
				err = fmt.Errorf("selector %s has no operation", f.Selector)
			}
			if err == nil && !bytes.Equal(repl, raw) {
				changed++
				if t.ops[f.Selector] == opEncrypt {
					sealed++
				}
			}
			return repl, err
		})
	if err != nil {
		return nil, 0, classify(ph, err)
	}
	s.observeFields(pol, sealed, changed-sealed)
	return out, changed, nil
}

// seal replaces raw (the JSON text of a value) by the JSON string of its ciphertext.
func (t *transformer) seal(ctx context.Context, f *jsonfield.Field, raw []byte) ([]byte, error) {
	if s, ok := jsonString(raw); ok && envelope.IsCiphertext(s) {
		return nil, newError(kindBadInput, t.phase, "field "+f.Selector.String()+" is already encrypted", nil)
	}
	if t.current == nil {
		k, err := t.keys.Current(ctx, t.keyID)
		if err != nil {
			return nil, fmt.Errorf("get current key: %w", err)
		}
		if k.ID != t.keyID {
			return nil, fmt.Errorf("get current key: keys returned key %q for %q", k.ID, t.keyID)
		}
		t.current = &k
	}
	out := make([]byte, 0, len(raw)*4/3+len(t.keyID)*4/3+96)
	out = append(out, '"')
	out, err := envelope.Seal(out, *t.current, t.mode, f.Label, nil, raw)
	if err != nil {
		return nil, fmt.Errorf("seal field %s: %w", f.Selector, err)
	}
	return append(out, '"'), nil
}

// open replaces the JSON string of a ciphertext by the JSON text it protects. Values that are
// not rkms ciphertexts pass unchanged. A ciphertext sealed under another key id than the one
// the policy computes for this request is refused: no cross-tenant decryption.
func (t *transformer) open(ctx context.Context, f *jsonfield.Field, raw []byte) ([]byte, error) {
	text, ok := jsonString(raw)
	if !ok || !envelope.IsCiphertext(text) {
		return raw, nil
	}
	h, err := envelope.Parse(text)
	if err != nil {
		return nil, fmt.Errorf("parse ciphertext of %s: %w", f.Selector, err)
	}
	if h.KeyID != t.keyID {
		return nil, newError(kindAuth, t.phase, authFailed,
			fmt.Errorf("field %s: ciphertext key id differs from the key id of this request", f.Selector))
	}
	k, ok := t.versions[h.KeyVersion]
	if !ok {
		k, err = t.keys.Version(ctx, h.KeyID, h.KeyVersion)
		if err != nil {
			return nil, fmt.Errorf("get key version %d: %w", h.KeyVersion, err)
		}
		if t.versions == nil {
			t.versions = map[uint32]envelope.Key{}
		}
		t.versions[h.KeyVersion] = k
	}
	pt, err := envelope.Open(nil, k, f.Label, nil, text)
	if err != nil {
		return nil, fmt.Errorf("open field %s: %w", f.Selector, err)
	}
	if !json.Valid(pt) {
		return nil, newError(kindAuth, t.phase, authFailed, fmt.Errorf("field %s: plaintext is not JSON", f.Selector))
	}
	return pt, nil
}

// jsonString returns the content of raw when raw is a JSON string. Ciphertexts never need
// escapes, so the common case is a slice of raw; escaped strings are decoded.
func jsonString(raw []byte) ([]byte, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return nil, false
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return inner, true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, false
	}
	return []byte(s), true
}
