package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/extproc"
	"github.com/rkms/rkms/extproc/policy"
)

// runValue seals one value or opens one ciphertext (--value).
func (f *sealFlags) runValue(ctx context.Context, op sealOp, keys extproc.Keys, in []byte) ([]byte, error) {
	var binding []byte
	if f.context != nil {
		binding = []byte(*f.context)
	}
	if op.op == policy.Encrypt {
		return f.sealValue(ctx, keys, binding, in)
	}
	return f.openValue(ctx, keys, binding, in)
}

// parseMode reads the --mode flag: "random" is accepted for "randomized".
func parseMode(s string) (envelope.Mode, error) {
	if s == "random" {
		s = "randomized"
	}
	var m envelope.Mode
	if err := m.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--mode: %q is not randomized (random) or deterministic", s)
	}
	return m, nil
}

// valuePlaintext returns the plaintext of a --value: the exact JSON text of the value, as a
// document field's (the format seals JSON text), so that the ciphertext can stand in a document.
func valuePlaintext(in []byte, isJSON bool) ([]byte, error) {
	if isJSON {
		v := bytes.TrimSpace(in)
		if !json.Valid(v) {
			return nil, errors.New("--json: standard input is not one JSON value")
		}
		return v, nil
	}
	s := trimLine(in)
	if !utf8.Valid(s) {
		return nil, errors.New("the value is not UTF-8 text (give a JSON string with --json)")
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(string(s)); err != nil {
		return nil, fmt.Errorf("encode the value as a JSON string: %w", err)
	}
	return trimLine(b.Bytes()), nil
}

func (f *sealFlags) sealValue(ctx context.Context, keys extproc.Keys, binding, in []byte) ([]byte, error) {
	mode, err := parseMode(f.mode)
	if err != nil {
		return nil, err
	}
	if err := envelope.ValidateKeyID(f.keyID); err != nil {
		return nil, fmt.Errorf("--key-id: %w", err)
	}
	pt, err := valuePlaintext(in, f.json)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	k, err := keys.Current(ctx, f.keyID)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", f.keyID, err)
	}
	out, err := envelope.Seal(nil, k, mode, f.label, binding, pt)
	if err != nil {
		return nil, err // envelope's errors name the limit broken, never the value
	}
	return append(out, '\n'), nil
}

// openValue opens one ciphertext, bare (rkms:...) or as a JSON string. With --key-id, a
// ciphertext under another key id is refused, as ext_proc refuses one from another tenant.
func (f *sealFlags) openValue(ctx context.Context, keys extproc.Keys, binding, in []byte) ([]byte, error) {
	text := bytes.TrimSpace(in)
	if s, ok := jsonStringOf(text); ok {
		text = s
	}
	h, err := envelope.Parse(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", envelope.ErrAuthentication, err)
	}
	if f.keyID != "" && h.KeyID != f.keyID {
		return nil, fmt.Errorf("%s: the ciphertext is under key id %s, not %s", envelope.ErrAuthentication, h.KeyID, f.keyID)
	}
	k, err := keys.Version(ctx, h.KeyID, h.KeyVersion)
	if err != nil {
		if errors.Is(err, extproc.ErrKeyNotFound) {
			return nil, fmt.Errorf("%s: %w", envelope.ErrAuthentication, err)
		}
		return nil, fmt.Errorf("key %s version %d: %w", h.KeyID, h.KeyVersion, err)
	}
	pt, err := envelope.Open(nil, k, f.label, binding, text)
	if err != nil {
		if errors.Is(err, envelope.ErrAuthentication) {
			return nil, fmt.Errorf("%w (label %q, context %s)", err, f.label, contextNote(binding))
		}
		return nil, err
	}
	if !json.Valid(pt) {
		clear(pt)
		return nil, fmt.Errorf("%s: the plaintext is not JSON", envelope.ErrAuthentication)
	}
	if !f.json {
		var s string
		if json.Unmarshal(pt, &s) == nil {
			clear(pt)
			return append([]byte(s), '\n'), nil
		}
	}
	return append(pt, '\n'), nil
}

// contextNote says which record binding an open used, without a value: the binding is data
// of the record (an id), which the caller gave.
func contextNote(binding []byte) string {
	if len(binding) == 0 {
		return "none"
	}
	return "as given"
}

// jsonStringOf returns the content of raw when raw is a JSON string.
func jsonStringOf(raw []byte) ([]byte, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return nil, false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return nil, false
	}
	return []byte(s), true
}
