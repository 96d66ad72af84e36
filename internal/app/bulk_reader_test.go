package app

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// readAll returns the lines recordReader reads from in: each line's text, or "<too long>".
func readAll(t *testing.T, in io.Reader, max int) (lines []string, numbers []int64, consumed int64) {
	t.Helper()
	rr := newRecordReader(in, max)
	for {
		rec, n, tooLong, err := rr.next()
		if errors.Is(err, io.EOF) {
			return lines, numbers, rr.bytes
		}
		if err != nil {
			t.Fatal(err)
		}
		if tooLong {
			lines = append(lines, "<too long>")
		} else {
			lines = append(lines, string(rec))
		}
		numbers = append(numbers, n)
	}
}

func TestRecordReader(t *testing.T) {
	long := strings.Repeat("x", 100<<10) // over the reader's 64 KiB minimum buffer
	tests := []struct {
		name string
		in   string
		max  int
		want []string
	}{
		{"empty", "", 10, nil},
		{"LF", "a\nb\n", 10, []string{"a", "b"}},
		{"CRLF", "a\r\nb\r\n", 10, []string{"a", "b"}},
		{"no final newline", "a\nb", 10, []string{"a", "b"}},
		{"blank lines kept as lines", "\n\na\n", 10, []string{"", "", "a"}},
		{"a lone CR stays", "a\rb\n", 10, []string{"a\rb"}},
		{"exactly max", "0123456789\n", 10, []string{"0123456789"}},
		{"exactly max with CRLF", "0123456789\r\n", 10, []string{"0123456789"}},
		{"one over max", "0123456789a\nb\n", 10, []string{"<too long>", "b"}},
		{"longer than the buffer", "a\n" + long + "\nb\n", 1 << 10, []string{"a", "<too long>", "b"}},
		{"longer than the buffer, at the end", "a\n" + long, 1 << 10, []string{"a", "<too long>"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range []io.Reader{strings.NewReader(tc.in), iotest.OneByteReader(strings.NewReader(tc.in))} {
				got, numbers, consumed := readAll(t, r, tc.max)
				if strings.Join(got, "|") != strings.Join(tc.want, "|") {
					t.Fatalf("lines %q, want %q", got, tc.want)
				}
				for i, n := range numbers {
					if n != int64(i+1) {
						t.Fatalf("line numbers %v", numbers)
					}
				}
				if consumed != int64(len(tc.in)) {
					t.Fatalf("consumed %d bytes of %d", consumed, len(tc.in))
				}
			}
		})
	}
}

// FuzzRecordReader: whatever the input and bound, the reader numbers lines from 1 without a
// gap, returns no line longer than the bound or holding a newline, consumes the whole input,
// and its lines and too-long marks account for every line of the input.
func FuzzRecordReader(f *testing.F) {
	f.Add([]byte("a\nb\r\n\n"), 3)
	f.Add([]byte("{\"tenant\":\"t1\"}\r\nxyz"), 4)
	f.Add(bytes.Repeat([]byte("z"), 70<<10), 1)
	f.Fuzz(func(t *testing.T, in []byte, max int) {
		if max < 1 || max > 1<<20 {
			return
		}
		rr := newRecordReader(bytes.NewReader(in), max)
		var want []string // the input's lines, line endings removed
		if len(in) > 0 {
			want = strings.Split(strings.TrimSuffix(string(in), "\n"), "\n")
		}
		for i := 0; ; i++ {
			rec, n, tooLong, err := rr.next()
			if errors.Is(err, io.EOF) {
				if i != len(want) || rr.bytes != int64(len(in)) {
					t.Fatalf("%d lines, want %d; consumed %d of %d", i, len(want), rr.bytes, len(in))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n != int64(i+1) || i >= len(want) {
				t.Fatalf("line %d numbered %d (input has %d)", i+1, n, len(want))
			}
			line := strings.TrimSuffix(want[i], "\r")
			switch {
			case tooLong && len(line) <= max:
				t.Fatalf("line %d of %d bytes reported too long (max %d)", n, len(line), max)
			case !tooLong && string(rec) != line:
				t.Fatalf("line %d is %q, want %q", n, rec, line)
			case !tooLong && len(rec) > max:
				t.Fatalf("line %d of %d bytes over max %d", n, len(rec), max)
			}
		}
	})
}
