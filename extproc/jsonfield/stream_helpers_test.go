package jsonfield

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// streamRun is what one run of a rewrite produced: the output, the strings the check saw (as
// outsideString renders them, offsets from the start of the stream), the values the transform
// saw, and the error.
type streamRun struct {
	out    []byte
	checks []string
	values []string
	err    error
}

// recorders returns a check and a transform that record into r, and fail with errStop at the
// failCheck-th check or failValue-th transform call (never when 0). The transform is wrap.
func (r *streamRun) recorders(offset func(int) int, failCheck, failValue int) (func(*Outside) error, func(*Field, []byte) ([]byte, error)) {
	check := func(o *Outside) error {
		c := *o
		c.Offset = offset(o.Offset)
		r.checks = append(r.checks, outsideString(&c))
		if len(r.checks) == failCheck {
			return errStop
		}
		return nil
	}
	fn := func(f *Field, raw []byte) ([]byte, error) {
		r.values = append(r.values, f.Selector.String()+"="+string(raw))
		if len(r.values) == failValue {
			return nil, errStop
		}
		return wrap(f, raw)
	}
	return check, fn
}

var errStop = errors.New("stop")

// refStream is the reference for a stream: RewriteChecked on the whole document or, for
// NDJSON, on each line that is not blank, with offsets made absolute.
func refStream(p *Plan, doc []byte, ndjson, withCheck bool, failCheck, failValue int) streamRun {
	var r streamRun
	lines := [][]byte{doc}
	if ndjson {
		lines = bytes.SplitAfter(doc, []byte("\n"))
	}
	at := 0
	for n, line := range lines {
		base := at
		at += len(line)
		body := line
		if ndjson {
			body = bytes.TrimSuffix(line, []byte("\n"))
		}
		if ndjson && len(bytes.Trim(body, " \t\r")) == 0 {
			r.out = append(r.out, line...)
			continue
		}
		check, fn := r.recorders(func(off int) int { return base + off }, failCheck, failValue)
		if !withCheck {
			check = nil
		}
		out, _, err := p.RewriteChecked(r.out, body, check, fn)
		if err != nil {
			var se *SyntaxError
			if errors.As(err, &se) {
				se.Offset += base
				if ndjson {
					se.Line = n + 1
				}
			}
			r.err = err
			return r
		}
		r.out = append(out, line[len(body):]...)
	}
	return r
}

// runStream feeds doc to a stream in chunks of the given sizes (cycling; the last chunk takes
// the rest) and closes it. It checks the stream's promises on the way: Held within the
// limits, and nothing more after an error.
func runStream(t testing.TB, p *Plan, opts StreamOptions, doc []byte, sizes []int, withCheck bool, failCheck, failValue int) streamRun {
	t.Helper()
	var r streamRun
	check, fn := r.recorders(func(off int) int { return off }, failCheck, failValue)
	if !withCheck {
		check = nil
	}
	s := p.NewStream(opts, check, fn)
	limit := max(opts.MaxValue, 0) + max(opts.MaxPending, 0)
	if opts.MaxValue == 0 || opts.MaxPending == 0 {
		limit = DefaultMaxValue + DefaultMaxPending
	}
	var out []byte
	var err error
	for k, rest := 0, doc; err == nil; k++ {
		n := len(rest)
		if len(sizes) > 0 {
			n = min(sizes[k%len(sizes)], len(rest))
		}
		before := len(out)
		out, err = s.Write(out, rest[:n])
		if err != nil && len(out) != before {
			t.Fatalf("Write returned output with its error %v", err)
		}
		if h := s.Held(); h > limit {
			t.Fatalf("Held() = %d, over the limits' sum %d", h, limit)
		}
		if rest = rest[n:]; len(rest) == 0 {
			break
		}
	}
	if err == nil {
		out, err = s.Close(out)
	}
	r.out, r.err = out, err
	if err != nil {
		checks, values := len(r.checks), len(r.values)
		if more, err2 := s.Write(nil, []byte(`{"more":1}`)); len(more) != 0 || err2 != err {
			t.Fatalf("Write after the error %v: %q, %v", err, more, err2)
		}
		if more, err2 := s.Close(nil); len(more) != 0 || err2 != err {
			t.Fatalf("Close after the error %v: %q, %v", err, more, err2)
		}
		if len(r.checks) != checks || len(r.values) != values {
			t.Fatal("callbacks called after the error")
		}
	}
	return r
}

// compareRuns fails unless the stream's run agrees with the reference: the same output, check
// calls and transform calls on success; otherwise an error of the same kind (the same
// SyntaxError, or the callbacks' error).
func compareRuns(t testing.TB, what string, got, want streamRun) {
	t.Helper()
	if want.err == nil {
		if got.err != nil {
			t.Fatalf("%s: stream failed: %v; want\n%q", what, got.err, want.out)
		}
		if !bytes.Equal(got.out, want.out) {
			t.Fatalf("%s: stream output\n%q\nwant\n%q", what, got.out, want.out)
		}
		if strings.Join(got.checks, "|") != strings.Join(want.checks, "|") {
			t.Fatalf("%s: stream checks\n%q\nwant\n%q", what, got.checks, want.checks)
		}
		if strings.Join(got.values, "|") != strings.Join(want.values, "|") {
			t.Fatalf("%s: stream values\n%q\nwant\n%q", what, got.values, want.values)
		}
		return
	}
	if got.err == nil {
		t.Fatalf("%s: stream succeeded with %q; want the error %v", what, got.out, want.err)
	}
	var gse, wse *SyntaxError
	switch {
	case errors.As(want.err, &wse):
		// The buffered path validates the whole document before any callback; the stream calls
		// them as it goes, so a callback's error may come first.
		if errors.Is(got.err, errStop) {
			return
		}
		if !errors.As(got.err, &gse) || *gse != *wse {
			t.Fatalf("%s: stream error %v; want %v", what, got.err, want.err)
		}
	case errors.Is(want.err, errStop):
		if !errors.Is(got.err, errStop) {
			t.Fatalf("%s: stream error %v; want the callback's %v", what, got.err, want.err)
		}
	default:
		t.Fatalf("%s: unexpected reference error %v", what, want.err)
	}
}

// randomSizes returns chunk sizes drawn from seed: mostly tiny, sometimes large.
func randomSizes(seed uint64, n int) []int {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	sizes := make([]int, 1+rng.IntN(8))
	for i := range sizes {
		switch rng.IntN(4) {
		case 0:
			sizes[i] = 1
		case 1:
			sizes[i] = 1 + rng.IntN(8)
		case 2:
			sizes[i] = 1 + rng.IntN(64)
		default:
			sizes[i] = 1 + rng.IntN(max(n, 1))
		}
	}
	return sizes
}

// streamFields parses selectors one a line; a leading "-" makes a Remove field (ignored when
// the selector does not end in a member name).
func streamFields(text string) []Field {
	var fs []Field
	for _, line := range strings.Split(text, "\n") {
		remove := strings.HasPrefix(line, "-")
		sel, err := ParseSelector(strings.TrimPrefix(line, "-"))
		if err != nil {
			continue
		}
		fs = append(fs, Field{Selector: sel, Label: sel.DefaultLabel(), Remove: remove && sel.EndsInMember()})
	}
	return fs
}

func describe(doc []byte, sizes []int) string {
	return fmt.Sprintf("doc %q chunks %v", doc, sizes)
}
