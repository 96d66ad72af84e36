package envelope

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/rkms/rkms/secret"
)

var update = flag.Bool("update", false, "regenerate testdata/vectors.json (randomized texts already there are kept)")

const vectorsPath = "testdata/vectors.json"

// vectorFile is the layout of testdata/vectors.json.
type vectorFile struct {
	Comment string      `json:"comment"`
	Keys    []vectorKey `json:"keys"`
	Vectors []vector    `json:"vectors"`
}

type vectorKey struct {
	Name    string `json:"name"`
	ID      string `json:"id"`
	Version uint32 `json:"version"`
	DataKey string `json:"data_key"` // hex
}

// vector is one case. Kind "seal": Seal must produce Text exactly (deterministic mode) and Open
// must return Plaintext. Kind "open": Open must return Plaintext. Kind "reject": Open must fail
// with Error (and Parse too, for malformed and unsupported_version).
type vector struct {
	Name      string  `json:"name"`
	Kind      string  `json:"kind"`
	Key       string  `json:"key"`
	Mode      string  `json:"mode,omitempty"`
	Label     string  `json:"label"`
	Context   string  `json:"context,omitempty"`
	Plaintext string  `json:"plaintext,omitempty"`
	Text      string  `json:"text"`
	Header    *Header `json:"header,omitempty"`
	Error     string  `json:"error,omitempty"`
}

var vectorErrors = map[string]error{
	"malformed":           ErrMalformed,
	"unsupported_version": ErrUnsupportedVersion,
	"key_mismatch":        ErrKeyMismatch,
	"authentication":      ErrAuthentication,
}

func TestVectors(t *testing.T) {
	if *update {
		f, err := generateVectors(t)
		if err != nil {
			t.Fatalf("generate vectors: %v", err)
		}
		out, err := json.MarshalIndent(f, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(vectorsPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vectorsPath, append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f := loadVectors(t)
	keys := vectorKeys(t, f)
	kinds := map[string]int{}
	for _, v := range f.Vectors {
		kinds[v.Kind]++
		t.Run(v.Name, func(t *testing.T) { checkVector(t, keys, v) })
	}
	// The file must keep covering every kind and every error.
	for _, k := range []string{"seal", "open", "reject"} {
		if kinds[k] == 0 {
			t.Errorf("no %q vectors in %s", k, vectorsPath)
		}
	}
	seen := map[string]bool{}
	for _, v := range f.Vectors {
		seen[v.Error] = true
	}
	for name := range vectorErrors {
		if !seen[name] {
			t.Errorf("no vector expects error %q", name)
		}
	}
}

func checkVector(t *testing.T, keys map[string]Key, v vector) {
	key, ok := keys[v.Key]
	if !ok {
		t.Fatalf("unknown key %q", v.Key)
	}
	text := []byte(v.Text)
	switch v.Kind {
	case "seal":
		var mode Mode
		if err := mode.UnmarshalText([]byte(v.Mode)); err != nil {
			t.Fatal(err)
		}
		if mode != Deterministic {
			t.Fatalf("seal vectors must be deterministic, got %s", mode)
		}
		got, err := Seal(nil, key, mode, v.Label, []byte(v.Context), []byte(v.Plaintext))
		if err != nil {
			t.Fatalf("Seal: %v", err)
		}
		if string(got) != v.Text {
			t.Fatalf("Seal = %q\nwant   %q", got, v.Text)
		}
		fallthrough
	case "open":
		got, err := Open(nil, key, v.Label, []byte(v.Context), text)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if string(got) != v.Plaintext {
			t.Fatalf("Open = %q, want %q", got, v.Plaintext)
		}
		h, err := Parse(text)
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		if v.Header == nil || h != *v.Header {
			t.Fatalf("Parse = %+v, want %+v", h, v.Header)
		}
	case "reject":
		want, ok := vectorErrors[v.Error]
		if !ok {
			t.Fatalf("unknown error %q", v.Error)
		}
		got, err := Open(nil, key, v.Label, []byte(v.Context), text)
		if !errors.Is(err, want) {
			t.Fatalf("Open = %q, %v; want error %v", got, err, want)
		}
		if want == ErrAuthentication && err.Error() != "authentication failed" {
			t.Fatalf("authentication error says %q", err)
		}
		h, perr := Parse(text)
		switch want {
		case ErrMalformed, ErrUnsupportedVersion:
			if !errors.Is(perr, want) {
				t.Fatalf("Parse error = %v, want %v", perr, want)
			}
		default:
			if perr != nil {
				t.Fatalf("Parse: %v (only Open should reject this vector)", perr)
			}
			if v.Header == nil || h != *v.Header {
				t.Fatalf("Parse = %+v, want %+v", h, v.Header)
			}
		}
	default:
		t.Fatalf("unknown kind %q", v.Kind)
	}
}

func loadVectors(t *testing.T) vectorFile {
	t.Helper()
	b, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatalf("read vectors (regenerate with -update): %v", err)
	}
	var f vectorFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("decode %s: %v", vectorsPath, err)
	}
	if len(f.Vectors) == 0 {
		t.Fatalf("%s has no vectors", vectorsPath)
	}
	return f
}

func vectorKeys(t *testing.T, f vectorFile) map[string]Key {
	t.Helper()
	keys := map[string]Key{}
	for _, k := range f.Keys {
		b, err := hex.DecodeString(k.DataKey)
		if err != nil {
			t.Fatalf("key %s: %v", k.Name, err)
		}
		keys[k.Name] = Key{ID: k.ID, Version: k.Version, Secret: secret.New(b)}
	}
	return keys
}

// The generator. Inputs and expected outcomes are declared here; only the ciphertexts come
// from the code, and randomized ones are taken from the existing file when they still open.

func generateVectors(t *testing.T) (vectorFile, error) {
	f := vectorFile{
		Comment: "rkms envelope format v1 test vectors; see FORMAT.md section 11. " +
			"Regenerate with: go test ./envelope/ -run TestVectors -update",
		Keys: []vectorKey{
			{Name: "acme-v1", ID: "tenant-acme", Version: 1, DataKey: hexRange(0x00)},
			{Name: "acme-v2", ID: "tenant-acme", Version: 2, DataKey: hexRange(0x20)},
			{Name: "acme-v1-other-data-key", ID: "tenant-acme", Version: 1, DataKey: hexRange(0x40)},
			{Name: "globex-v1", ID: "tenant-globex", Version: 1, DataKey: hexRange(0x00)},
			{Name: "long-id", ID: "arn:aws:kms/us-east-1@tenant+x=y_z.key-" + fmt.Sprintf("%0216d", 0), Version: 4294967295, DataKey: hexRange(0x60)},
		},
	}
	old := map[string]vector{}
	if prev, err := os.ReadFile(vectorsPath); err == nil {
		var p vectorFile
		if err := json.Unmarshal(prev, &p); err != nil {
			return f, fmt.Errorf("read existing vectors: %w", err)
		}
		for _, v := range p.Vectors {
			old[v.Name] = v
		}
	}
	keys := vectorKeys(t, f)

	valid := []vector{
		{Name: "deterministic string", Key: "acme-v1", Mode: "deterministic", Label: "ssn", Plaintext: `"123-45-6789"`},
		{Name: "deterministic string with context", Key: "acme-v1", Mode: "deterministic", Label: "ssn", Context: "tenant=acme", Plaintext: `"123-45-6789"`},
		{Name: "deterministic string, other label", Key: "acme-v1", Mode: "deterministic", Label: "tax_id", Plaintext: `"123-45-6789"`},
		{Name: "deterministic string, key version 2", Key: "acme-v2", Mode: "deterministic", Label: "ssn", Plaintext: `"123-45-6789"`},
		{Name: "deterministic email", Key: "acme-v1", Mode: "deterministic", Label: "email", Plaintext: `"alice@example.com"`},
		{Name: "deterministic number", Key: "acme-v1", Mode: "deterministic", Label: "age", Plaintext: `42`},
		{Name: "deterministic null", Key: "acme-v1", Mode: "deterministic", Label: "x", Plaintext: `null`},
		{Name: "deterministic object", Key: "acme-v1", Mode: "deterministic", Label: "address", Plaintext: `{"street": "1 Main St", "zip": "12345"}`},
		{Name: "deterministic one byte, longest key id", Key: "long-id", Mode: "deterministic", Label: "f", Plaintext: `7`},
		{Name: "randomized string", Key: "acme-v1", Mode: "randomized", Label: "ssn", Plaintext: `"123-45-6789"`},
		{Name: "randomized string with context", Key: "acme-v1", Mode: "randomized", Label: "ssn", Context: "tenant=acme", Plaintext: `"123-45-6789"`},
		{Name: "randomized escaped unicode string", Key: "acme-v1", Mode: "randomized", Label: "name", Plaintext: `"Ren\u00e9e \"R\" 日本 🎉"`},
		{Name: "randomized float", Key: "acme-v1", Mode: "randomized", Label: "balance", Plaintext: `-1234.5e-2`},
		{Name: "randomized true", Key: "acme-v1", Mode: "randomized", Label: "vip", Plaintext: `true`},
		{Name: "randomized array", Key: "acme-v2", Mode: "randomized", Label: "phones", Plaintext: `["+1 555 0100", "+1 555 0199"]`},
		{Name: "randomized longest key id", Key: "long-id", Mode: "randomized", Label: "f", Plaintext: `{}`},
	}
	byName := map[string]vector{}
	for i := range valid {
		v := &valid[i]
		key := keys[v.Key]
		var mode Mode
		if err := mode.UnmarshalText([]byte(v.Mode)); err != nil {
			return f, err
		}
		v.Kind = "seal"
		if mode == Randomized {
			v.Kind = "open"
			if o, ok := old[v.Name]; ok && o.Label == v.Label && o.Context == v.Context && o.Key == v.Key {
				if pt, err := Open(nil, key, v.Label, []byte(v.Context), []byte(o.Text)); err == nil && string(pt) == v.Plaintext {
					v.Text = o.Text
				}
			}
		}
		if v.Text == "" {
			text, err := Seal(nil, key, mode, v.Label, []byte(v.Context), []byte(v.Plaintext))
			if err != nil {
				return f, fmt.Errorf("%s: %w", v.Name, err)
			}
			v.Text = string(text)
		}
		h, err := Parse([]byte(v.Text))
		if err != nil {
			return f, fmt.Errorf("%s: %w", v.Name, err)
		}
		v.Header = &h
		byName[v.Name] = *v
	}
	f.Vectors = append(f.Vectors, valid...)

	rejects, err := rejectVectors(t, byName)
	if err != nil {
		return f, err
	}
	f.Vectors = append(f.Vectors, rejects...)
	return f, nil
}

func hexRange(start byte) string {
	b := make([]byte, DataKeyLen)
	for i := range b {
		b[i] = start + byte(i)
	}
	return hex.EncodeToString(b)
}
