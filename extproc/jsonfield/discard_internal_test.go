package jsonfield

import (
	"bytes"
	"testing"
)

func TestDiscardClearsOnlyItsOwnArray(t *testing.T) {
	secret := []byte("123-45-6789")
	for _, tc := range []struct {
		name      string
		dstCap    int
		outGrows  bool
		wantClear bool
	}{
		{"out outgrew dst", 4, true, true},
		{"out outgrew an empty dst", 0, true, true},
		{"out is dst's array", 64, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := make([]byte, 0, tc.dstCap)
			out := append(dst, secret...)
			if grew := tc.dstCap < len(secret); grew != tc.outGrows {
				t.Fatalf("test setup: grew %v", grew)
			}
			discard(out, dst)
			if cleared := !bytes.Contains(out[:cap(out)], secret); cleared != tc.wantClear {
				t.Fatalf("cleared %v, want %v", cleared, tc.wantClear)
			}
		})
	}
}
