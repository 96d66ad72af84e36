package extproc

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rkms/rkms/extproc/jsonfield"
)

// tagFn replaces every selected value by "<n>": the output shows where values were, never their
// input bytes.
func tagFn() func(f *jsonfield.Field, raw []byte) ([]byte, error) {
	n := 0
	return func(f *jsonfield.Field, raw []byte) ([]byte, error) {
		n++
		return fmt.Appendf(nil, `"<%d>"`, n), nil
	}
}

func testPlan(t testing.TB, sels ...string) *jsonfield.Plan {
	t.Helper()
	var fs []jsonfield.Field
	for _, s := range sels {
		sel, err := jsonfield.ParseSelector(s)
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, jsonfield.Field{Selector: sel, Label: "l"})
	}
	p, err := jsonfield.NewPlan(fs, jsonfield.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// runStream feeds in to a new lineStream in chunks of size n and returns the output.
func runStream(t testing.TB, p *jsonfield.Plan, ndjson bool, in []byte, n int) ([]byte, error) {
	t.Helper()
	s := newLineStream(p, ndjson, nil, nil, tagFn())
	var out []byte
	var err error
	for len(in) > 0 && err == nil {
		k := min(n, len(in))
		out, err = s.Write(out, in[:k])
		in = in[k:]
	}
	if err == nil {
		out, err = s.Close(out)
	}
	return out, err
}

// TestLineStream: for every chunking, the output is the buffered rewrite of each line (blank
// lines and CRLF kept), or of the whole document.
func TestLineStream(t *testing.T) {
	p := testPlan(t, "$.ssn", "$.a.b")
	for _, tc := range []struct {
		name   string
		ndjson bool
		in     string
	}{
		{"lines", true, `{"ssn":"1","x":2}` + "\n" + `{"a":{"b":[1,2]},"ssn":null}` + "\n"},
		{"no final newline", true, `{"ssn":"1"}` + "\n" + `{"ssn":"2"}`},
		{"crlf and blank lines", true, `{"ssn":"1"}` + "\r\n\r\n  \n" + `{"ssn":"2"}` + "\r\n"},
		{"scalars per line", true, "1\n\"s\"\n[]\n"},
		{"empty", true, ""},
		{"document", false, `{"ssn":"1","a":{"b":"x"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want []byte
			if tc.ndjson {
				for _, line := range strings.SplitAfter(tc.in, "\n") {
					body := strings.TrimRight(line, "\r\n")
					if strings.TrimSpace(body) == "" {
						want = append(want, line...)
						continue
					}
					fn := tagFn()
					out, _, err := p.RewriteChecked(nil, []byte(body), nil, fn)
					if err != nil {
						t.Fatal(err)
					}
					want = append(append(want, out...), line[len(body):]...)
				}
			} else {
				var err error
				if want, _, err = p.RewriteChecked(nil, []byte(tc.in), nil, tagFn()); err != nil {
					t.Fatal(err)
				}
			}
			for _, n := range []int{1, 2, 3, 7, 64, 1 << 20} {
				got, err := runStream(t, p, tc.ndjson, []byte(tc.in), n)
				if err != nil {
					t.Fatalf("chunks of %d: %v", n, err)
				}
				// tagFn numbers values per stream; the reference numbers them per line.
				if norm(got) != norm(want) {
					t.Fatalf("chunks of %d:\n got %q\nwant %q", n, got, want)
				}
			}
		})
	}
}

// norm erases the numbers tagFn writes.
func norm(b []byte) string {
	var sb strings.Builder
	in := false
	for _, c := range string(b) {
		switch {
		case c == '<':
			in = true
			sb.WriteRune(c)
		case c == '>':
			in = false
			sb.WriteRune(c)
		case !in:
			sb.WriteRune(c)
		}
	}
	return sb.String()
}

// TestLineStreamErrors: a malformed line, a line over the bound, a truncated document: the error
// names the line (NDJSON), and nothing of a selected value reaches the output.
func TestLineStreamErrors(t *testing.T) {
	p := testPlan(t, "$.ssn")
	for _, tc := range []struct {
		name   string
		ndjson bool
		in     string
		line   int
	}{
		{"bad line 3", true, "{\"ssn\":\"a\"}\n{\"ssn\":\"b\"}\n{\"ssn\":\"c\"\n{\"ssn\":\"d\"}\n", 3},
		{"unterminated last line", true, "{\"ssn\":\"a\"}\n{\"ssn\":", 2},
		{"line too long", true, "{\"ssn\":\"a\"}\n{\"ssn\":\"" + strings.Repeat("x", maxHeld) + "\"}\n", 2},
		{"truncated document", false, `{"ssn":"a"`, 0},
		{"document too long", false, `{"ssn":"` + strings.Repeat("x", maxHeld) + `"}`, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, n := range []int{1, 5, 4096} {
				out, err := runStream(t, p, tc.ndjson, []byte(tc.in), n)
				if !errors.Is(err, jsonfield.ErrInvalidJSON) {
					t.Fatalf("chunks of %d: error %v, want invalid JSON", n, err)
				}
				var le *LineError
				if tc.line > 0 && (!errors.As(err, &le) || le.Line != tc.line) {
					t.Fatalf("chunks of %d: error %v, want line %d", n, err, tc.line)
				}
				for _, v := range []string{`"a"`, `"b"`, `"c"`, `"d"`, "xxxx"} {
					if bytes.Contains(out, []byte(v)) {
						t.Fatalf("chunks of %d: output %q holds the selected value %s", n, out, v)
					}
				}
			}
		})
	}
}

// TestLineStreamHeld: what the stream holds is its unfinished line, at most maxHeld.
func TestLineStreamHeld(t *testing.T) {
	s := newLineStream(testPlan(t, "$.ssn"), true, nil, nil, tagFn())
	if _, err := s.Write(nil, []byte(`{"ssn":"`+strings.Repeat("x", 1000))); err != nil {
		t.Fatal(err)
	}
	if h := s.Held(); h < 1000 || h > maxHeld {
		t.Fatalf("held %d while a 1 KB line is unfinished", h)
	}
	if _, err := s.Write(nil, []byte("\"}\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Close(nil); err != nil {
		t.Fatal(err)
	}
	if h := s.Held(); h != 0 {
		t.Fatalf("held %d after Close", h)
	}
}

// FuzzLineStream: for any input and chunking, the streamed NDJSON rewrite fails exactly when the
// per-line buffered rewrite does, and otherwise gives its output.
func FuzzLineStream(f *testing.F) {
	f.Add([]byte("{\"ssn\":\"#1\"}\n{\"ssn\":\"#2\"}\r\n\n{\"a\":{\"b\":\"#3\"}}"), uint8(3))
	f.Add([]byte("{\"ssn\":\"#1\"}\n{\"ssn\":#2}\n"), uint8(1))
	p := testPlan(f, "$.ssn", "$.a.b")
	f.Fuzz(func(t *testing.T, in []byte, step uint8) {
		n := int(step)%17 + 1
		got, err := runStream(t, p, true, in, n)
		var want []byte
		var werr error
		for _, line := range bytes.SplitAfter(in, []byte("\n")) {
			body := bytes.TrimRight(line, "\n")
			body = bytes.TrimSuffix(body, []byte("\r"))
			if len(bytes.TrimLeft(body, " \t\r")) == 0 {
				want = append(want, line...)
				continue
			}
			var out []byte
			if out, _, werr = p.RewriteChecked(nil, body, nil, tagFn()); werr != nil {
				break
			}
			want = append(append(want, out...), line[len(body):]...)
		}
		if (err == nil) != (werr == nil) {
			t.Fatalf("stream error %v, buffered error %v", err, werr)
		}
		if err == nil && norm(got) != norm(want) {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
}
