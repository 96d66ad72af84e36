package decompress

import (
	"bytes"
	"errors"
	"os"
	"testing"
)

// FuzzAppend: on any input and any coding, Append never panics, never decodes past its bound,
// keeps dst's prefix, and fails only with one of the package's errors.
func FuzzAppend(f *testing.F) {
	for _, name := range []string{"doc.json", "doc.json.gz", "doc.json.zlib", "doc.json.br", "doc.json.zst", "doc.json.rawdeflate"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		for c := range Zstd + 1 {
			f.Add(uint8(c), b)
		}
	}
	f.Fuzz(func(t *testing.T, c uint8, src []byte) {
		coding := Coding(c % uint8(Zstd+1))
		lim := Limits{MaxSize: 64 << 10, MaxRatio: 50}
		out, err := Append([]byte("p"), coding, src, lim)
		if len(out) == 0 || out[0] != 'p' {
			t.Fatal("the prefix is lost")
		}
		if bound := lim.Bound(len(src)); coding != Identity && int64(len(out)-1) > bound {
			t.Fatalf("decoded %d bytes, bound %d", len(out)-1, bound)
		}
		if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrUnsupported) {
			t.Fatalf("unclassified error: %v", err)
		}
	})
}

// FuzzRoundTrip: what the encoders produce decodes back to the input.
func FuzzRoundTrip(f *testing.F) {
	f.Add(uint8(0), []byte(`{"a":"b"}`))
	f.Add(uint8(3), []byte{})
	f.Fuzz(func(t *testing.T, c uint8, doc []byte) {
		coding := Gzip + Coding(c%4)
		enc := encode(t, coding, doc)
		got, err := Append(nil, coding, enc, Limits{MaxSize: max(int64(len(doc)), 1)})
		if err != nil || !bytes.Equal(got, doc) {
			t.Fatalf("%s: %d bytes, %v; want %d", coding, len(got), err, len(doc))
		}
	})
}
