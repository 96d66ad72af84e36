package keyring_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/rkms/rkms/keyring"
)

// wrapVector is one golden vector of the branch wrap format (WRAP.md): keys, binding, nonce and
// the expected blob; Open lists bindings that must be refused.
type wrapVector struct {
	Name      string                `json:"name"`
	BranchKey string                `json:"branch_key"`
	DataKey   string                `json:"data_key"`
	Nonce     string                `json:"nonce"`
	Binding   keyring.WrapBinding   `json:"binding"`
	Blob      string                `json:"blob"`
	Refused   []keyring.WrapBinding `json:"refused"`
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWrapGolden pins the branch wrap format: the same inputs give the same blob, the blob
// opens under its binding only, and its layout is format byte, nonce, ciphertext and tag.
func TestWrapGolden(t *testing.T) {
	raw, err := os.ReadFile("testdata/branchwrap-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	var vectors []wrapVector
	if err := json.Unmarshal(raw, &vectors); err != nil {
		t.Fatal(err)
	}
	if len(vectors) == 0 {
		t.Fatal("no vectors")
	}
	for _, v := range vectors {
		t.Run(v.Name, func(t *testing.T) {
			bk, dk, nonce, want := unhex(t, v.BranchKey), unhex(t, v.DataKey), unhex(t, v.Nonce), unhex(t, v.Blob)
			got, err := keyring.WrapKeyNonce(bk, dk, nonce, v.Binding)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("blob changed:\n got %x\nwant %x", got, want)
			}
			if len(got) != keyring.WrappedKeySize || got[0] != keyring.WrapFormatV1 || !bytes.Equal(got[1:13], nonce) {
				t.Fatalf("layout: %d bytes, format %#x, nonce %x", len(got), got[0], got[1:13])
			}
			open, err := keyring.UnwrapKey(bk, want, v.Binding)
			if err != nil || !bytes.Equal(open, dk) {
				t.Fatalf("UnwrapKey = %x, %v", open, err)
			}
			for _, b := range v.Refused {
				if _, err := keyring.UnwrapKey(bk, want, b); !errors.Is(err, keyring.ErrWrapAuth) {
					t.Errorf("binding %+v: err %v, want ErrWrapAuth", b, err)
				}
			}
		})
	}
}

// TestWrapTampered: every byte flipped, a truncated or extended blob, another format byte and
// another branch key are all refused with ErrWrapAuth and nothing else.
func TestWrapTampered(t *testing.T) {
	bk := bytes.Repeat([]byte{7}, 32)
	b := keyring.WrapBinding{ID: "tenant-a", Version: 3, BranchID: "_rkms.branch.0", BranchVersion: 2}
	blob, err := keyring.WrapKey(bk, bytes.Repeat([]byte{9}, 32), b)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{"truncated": blob[:len(blob)-1], "extended": append(bytes.Clone(blob), 0), "empty": nil}
	for i := range blob {
		c := bytes.Clone(blob)
		c[i] ^= 0x01
		cases["flip "+string(rune('A'+i%26))+hex.EncodeToString([]byte{byte(i)})] = c
	}
	for name, c := range cases {
		if _, err := keyring.UnwrapKey(bk, c, b); !errors.Is(err, keyring.ErrWrapAuth) {
			t.Errorf("%s: err %v, want ErrWrapAuth", name, err)
		}
	}
	if _, err := keyring.UnwrapKey(bytes.Repeat([]byte{8}, 32), blob, b); !errors.Is(err, keyring.ErrWrapAuth) {
		t.Errorf("other branch key: err %v", err)
	}
	if _, err := keyring.UnwrapKey(bk, blob, keyring.WrapBinding{ID: "tenant-a", Version: 0, BranchID: "_rkms.branch.0", BranchVersion: 2}); err == nil {
		t.Error("version 0 binding accepted")
	}
}

// FuzzUnwrapKey: the parser of wrapped records never panics, refuses with ErrWrapAuth (or an
// invalid binding), and whatever it opens re-wraps, with the blob's own nonce, to the same blob.
func FuzzUnwrapKey(f *testing.F) {
	bk := bytes.Repeat([]byte{7}, 32)
	good, _ := keyring.WrapKey(bk, bytes.Repeat([]byte{1}, 32), keyring.WrapBinding{ID: "t", Version: 1, BranchID: "_rkms.branch.0", BranchVersion: 1})
	f.Add(good, "t", uint32(1), "_rkms.branch.0", uint32(1))
	f.Add(good[:13], "t", uint32(1), "_rkms.branch.0", uint32(2))
	f.Add([]byte{1}, "", uint32(0), "", uint32(0))
	f.Fuzz(func(t *testing.T, blob []byte, id string, v uint32, bid string, bv uint32) {
		b := keyring.WrapBinding{ID: id, Version: v, BranchID: bid, BranchVersion: bv}
		dk, err := keyring.UnwrapKey(bk, blob, b)
		if err != nil {
			if !errors.Is(err, keyring.ErrWrapAuth) && !errors.Is(err, keyring.ErrInvalidID) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		again, err := keyring.WrapKeyNonce(bk, dk, blob[1:13], b)
		if err != nil || !bytes.Equal(again, blob) {
			t.Fatalf("re-wrap differs: %x vs %x (%v)", again, blob, err)
		}
	})
}
