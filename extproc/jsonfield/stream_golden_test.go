package jsonfield

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStreamGolden streams every testdata/golden document (one byte at a time and in chunks of
// 5) through a Stream with wrap as the transform: the output must be exactly NAME.want, or the
// error exactly NAME.err, the files the buffered Rewrite is checked against.
func TestStreamGolden(t *testing.T) {
	goldenStream(t, filepath.Join("testdata", "golden", "*.json"), false)
}

// TestStreamGoldenNDJSON does the same for the NDJSON streams of testdata/stream (NAME.ndjson,
// selectors in NAME.sel with "-" marking a Remove field, output in NAME.want or the error in
// NAME.err; -update rewrites them).
func TestStreamGoldenNDJSON(t *testing.T) {
	goldenStream(t, filepath.Join("testdata", "stream", "*.ndjson"), true)
}

func goldenStream(t *testing.T, pattern string, ndjson bool) {
	docs, err := filepath.Glob(pattern)
	if err != nil || len(docs) == 0 {
		t.Fatalf("no golden documents: %v", err)
	}
	for _, docPath := range docs {
		base := strings.TrimSuffix(docPath, filepath.Ext(docPath))
		t.Run(filepath.Base(base), func(t *testing.T) {
			doc := readFile(t, docPath)
			p, err := NewPlan(streamFields(strings.TrimSpace(string(readFile(t, base+".sel")))), Options{})
			if err != nil {
				t.Fatal(err)
			}
			for _, size := range []int{1, 5, len(doc)} {
				r := runStream(t, p, StreamOptions{NDJSON: ndjson}, doc, []int{size}, false, 0, 0)
				wantPath, got := base+".want", r.out
				if r.err != nil {
					wantPath, got = base+".err", []byte(r.err.Error()+"\n")
				}
				if *update && ndjson {
					if err := os.WriteFile(wantPath, got, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				if want := readFile(t, wantPath); !bytes.Equal(got, want) {
					t.Errorf("%s in chunks of %d: got\n%s\nwant\n%s", wantPath, size, got, want)
				}
			}
		})
	}
}
