package jsonfield

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// TestGolden runs every testdata/golden/NAME.json through Rewrite with the selectors listed one
// per line in NAME.sel and wrap as the transform. A valid document must give exactly NAME.want;
// an invalid one must fail with exactly the error text in NAME.err.
func TestGolden(t *testing.T) {
	docs, err := filepath.Glob(filepath.Join("testdata", "golden", "*.json"))
	if err != nil || len(docs) == 0 {
		t.Fatalf("no golden documents: %v", err)
	}
	for _, docPath := range docs {
		base := strings.TrimSuffix(docPath, ".json")
		t.Run(filepath.Base(base), func(t *testing.T) {
			doc := readFile(t, docPath)
			var fs []Field
			for _, line := range strings.Split(strings.TrimSpace(string(readFile(t, base+".sel"))), "\n") {
				sel, err := ParseSelector(line)
				if err != nil {
					t.Fatal(err)
				}
				fs = append(fs, Field{Selector: sel, Label: sel.DefaultLabel()})
			}
			out, _, err := Rewrite(nil, doc, fs, wrap)
			wantPath, got := base+".want", out
			if err != nil {
				wantPath, got = base+".err", []byte(err.Error()+"\n")
			}
			if *update {
				if err := os.WriteFile(wantPath, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if want := readFile(t, wantPath); !bytes.Equal(got, want) {
				t.Errorf("%s: got\n%s\nwant\n%s", wantPath, got, want)
			}
			if err == nil {
				if !json.Valid(out) {
					t.Errorf("output is not valid JSON")
				}
				back, _, err := Rewrite(nil, out, fs, unwrap)
				if err != nil || !bytes.Equal(back, doc) {
					t.Errorf("unwrapping the output does not restore the document (err %v)", err)
				}
			}
		})
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
