package localkms

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/rkms/rkms/keyring"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.json")

var discard = slog.New(slog.DiscardHandler)

func TestRoundTripAndContextBinding(t *testing.T) {
	r, err := Open(t.TempDir(), "r1", discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	encCtx := keyring.EncryptionContext("orders", 3)
	pt, blob, err := r.GenerateDataKey(ctx, encCtx)
	if err != nil || len(pt) != keyring.DataKeySize || len(blob) != 1+nonceSize+keyring.DataKeySize+tagSize {
		t.Fatalf("GenerateDataKey: %d, %d, %v", len(pt), len(blob), err)
	}
	got, err := r.Decrypt(ctx, blob, encCtx)
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("Decrypt: %v", err)
	}
	blob2, err := r.Encrypt(ctx, pt, encCtx)
	if err != nil || bytes.Equal(blob, blob2) {
		t.Fatalf("Encrypt: %v (must use a fresh nonce)", err)
	}
	bad := []map[string]string{
		keyring.EncryptionContext("orders", 4),
		keyring.EncryptionContext("other", 3),
		nil,
		{"rkms:key-id": "orders", "rkms:key-version": "3", "extra": ""},
	}
	for _, c := range bad {
		if _, err := r.Decrypt(ctx, blob, c); !errors.Is(err, keyring.ErrRegionRejected) || err.Error() != errAuth.Error() {
			t.Fatalf("Decrypt with context %v: %v", c, err)
		}
	}
	other, err := Open(t.TempDir(), "r1", discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Decrypt(ctx, blob, encCtx); !errors.Is(err, keyring.ErrRegionRejected) {
		t.Fatal("another master key opened the blob")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := r.Encrypt(cctx, pt, encCtx); !errors.Is(err, keyring.ErrRegionUnavailable) {
		t.Fatalf("cancelled Encrypt: %v", err)
	}
}

func TestAdditionalDataIsUnambiguous(t *testing.T) {
	pairs := []map[string]string{
		{"a": "bc"}, {"ab": "c"}, {"a": "b", "c": ""}, {"a": "b\x00c"}, {}, nil,
	}
	seen := map[string]int{}
	for i, p := range pairs {
		ad := string(additionalData(p))
		if j, dup := seen[ad]; dup && !(len(pairs[j]) == 0 && len(p) == 0) {
			t.Fatalf("contexts %v and %v encode the same", pairs[j], p)
		}
		seen[ad] = i
	}
	want := "726b6d732d6c6f63616c6b6d732d763100" + "02" + "01" + "61" + "01" + "31" + "01" + "62" + "00"
	if got := hex.EncodeToString(additionalData(map[string]string{"b": "", "a": "1"})); got != want {
		t.Fatalf("additional data %s, want %s", got, want)
	}
}

func TestKeyFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	a, err := Open(dir, "eu", discard)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "eu.key")
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 || st.Size() != masterKeySize {
		t.Fatalf("key file: %v, mode %v, size %d", err, st.Mode().Perm(), st.Size())
	}
	b, err := Open(dir, "eu", discard)
	if err != nil || a.KeyID() != b.KeyID() {
		t.Fatalf("reopen: %v, key ids %s and %s", err, a.KeyID(), b.KeyID())
	}

	tests := []struct {
		name  string
		setup func(path string)
	}{
		{"readable by others", func(p string) { _ = os.Chmod(p, 0o644) }},
		{"too short", func(p string) { _ = os.WriteFile(p, make([]byte, 31), 0o600) }},
		{"too long", func(p string) { _ = os.WriteFile(p, make([]byte, 33), 0o600) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			p := filepath.Join(d, "r.key")
			if err := os.WriteFile(p, make([]byte, 32), 0o600); err != nil {
				t.Fatal(err)
			}
			tt.setup(p)
			if _, err := Open(d, "r", discard); err == nil {
				t.Fatal("Open accepted a bad key file")
			}
		})
	}
	for _, name := range []string{"", ".hidden", "a/b", "../x", "a b", string(make([]byte, 65))} {
		if _, err := Open(dir, name, discard); err == nil {
			t.Fatalf("Open accepted region name %q", name)
		}
	}
}

func TestConcurrentFirstOpenAgrees(t *testing.T) {
	dir := t.TempDir()
	ids := make([]string, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			r, err := Open(dir, "r", discard)
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = r.KeyID()
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("concurrent opens made different keys: %v", ids)
		}
	}
}

// vector is one decryption test vector.
type vector struct {
	Name      string            `json:"name"`
	Master    string            `json:"master_hex"`
	Context   map[string]string `json:"context"`
	Blob      string            `json:"blob_hex"`
	Plaintext string            `json:"plaintext_hex,omitempty"` // empty: must fail
}

func TestVectors(t *testing.T) {
	path := filepath.Join("testdata", "vectors.json")
	if *update {
		writeVectors(t, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(data, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) < 5 {
		t.Fatalf("only %d vectors", len(vs))
	}
	for _, v := range vs {
		t.Run(v.Name, func(t *testing.T) {
			master, _ := hex.DecodeString(v.Master)
			blob, _ := hex.DecodeString(v.Blob)
			r, err := newRegion("v", master)
			if err != nil {
				t.Fatal(err)
			}
			pt, err := r.Decrypt(context.Background(), blob, v.Context)
			if v.Plaintext == "" {
				if err == nil || err.Error() != errAuth.Error() {
					t.Fatalf("want authentication failure, got %x, %v", pt, err)
				}
				return
			}
			if err != nil || hex.EncodeToString(pt) != v.Plaintext {
				t.Fatalf("Decrypt = %x, %v; want %s", pt, err, v.Plaintext)
			}
		})
	}
}

func writeVectors(t *testing.T, path string) {
	master := bytes.Repeat([]byte{0x42}, 32)
	r, err := newRegion("v", master)
	if err != nil {
		t.Fatal(err)
	}
	pt := bytes.Repeat([]byte{0x07}, 32)
	ec := keyring.EncryptionContext("orders", 1)
	blob := r.seal(pt, ec)
	flip := bytes.Clone(blob)
	flip[len(flip)-1] ^= 1
	badFormat := bytes.Clone(blob)
	badFormat[0] = 0x02
	h := hex.EncodeToString
	vs := []vector{
		{"valid", h(master), ec, h(blob), h(pt)},
		{"tampered tag", h(master), ec, h(flip), ""},
		{"unknown format byte", h(master), ec, h(badFormat), ""},
		{"wrong version in context", h(master), keyring.EncryptionContext("orders", 2), h(blob), ""},
		{"wrong key id in context", h(master), keyring.EncryptionContext("orderz", 1), h(blob), ""},
		{"truncated", h(master), ec, h(blob[:1+nonceSize+tagSize-1]), ""},
		{"wrong master key", h(bytes.Repeat([]byte{0x43}, 32)), ec, h(blob), ""},
	}
	data, _ := json.MarshalIndent(vs, "", "  ")
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

func FuzzDecrypt(f *testing.F) {
	r, err := newRegion("f", bytes.Repeat([]byte{1}, 32))
	if err != nil {
		f.Fatal(err)
	}
	good := r.seal(bytes.Repeat([]byte{9}, 32), keyring.EncryptionContext("k", 1))
	f.Add(good, "k", "1")
	f.Add([]byte{}, "", "")
	f.Add([]byte{1, 2, 3}, "k", "1")
	f.Fuzz(func(t *testing.T, blob []byte, id, version string) {
		encCtx := map[string]string{keyring.ContextKeyID: id, keyring.ContextKeyVersion: version}
		pt, err := r.Decrypt(context.Background(), blob, encCtx)
		if err != nil {
			if err.Error() != errAuth.Error() {
				t.Fatalf("non-uniform error %v", err)
			}
			return
		}
		// Whatever opens must re-seal and open to the same plaintext.
		again, err := r.Decrypt(context.Background(), r.seal(pt, encCtx), encCtx)
		if err != nil || !bytes.Equal(again, pt) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
