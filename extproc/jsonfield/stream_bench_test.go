package jsonfield

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
)

// The stream benchmarks compare a Stream with json.Valid on the same bytes in the same run
// (alternating, as BenchmarkRatio1MiB10Fields does) and report the stream's throughput as a
// multiple of json.Valid's (x-json.Valid-throughput; the project's target is >= 0.8). For NDJSON
// the baseline is json.Valid on each line. Compare runs with benchstat:
//
//	go test ./extproc/jsonfield -run '^$' -bench 'StreamRatio' -count 6 > new.txt
//	benchstat old.txt new.txt

// ndjsonDoc builds about size bytes of NDJSON records with four tagged fields each (ssn,
// email, phone, dob) among untagged ones, and returns it with the fields' selectors.
func ndjsonDoc(size int) ([]byte, []Field) {
	var doc []byte
	for i := 0; len(doc) < size; i++ {
		doc = fmt.Appendf(doc, `{"id":%d,"name":"user number %d","ssn":"%03d-%02d-%04d","email":"u%d@example.com",`+
			`"phone":"+1-555-%04d","dob":"19%02d-%02d-%02d","address":{"street":"%d Main Street","city":"Springfield",`+
			`"zip":"%05d"},"tags":["alpha","b\"eta\"","caf\u00e9"],"active":%t,"score":%d.%02d}`+"\n",
			i, i, i%1000, i%100, i%10000, i, i%10000, i%100, i%12+1, i%28+1, i, i*13%100000, i%3 == 0, i%1000, i%100)
	}
	return doc, fields("$.ssn", "$.email", "$.phone", "$.dob")
}

// sameSize returns a transform that replaces each value with a JSON string of the same length
// (values of at least two bytes), as a transform whose output size tracks its input does.
func sameSize() func(*Field, []byte) ([]byte, error) {
	var repl []byte
	return func(_ *Field, raw []byte) ([]byte, error) {
		repl = append(repl[:0], '"')
		for len(repl) < len(raw)-1 {
			repl = append(repl, 'x')
		}
		return append(repl, '"'), nil
	}
}

// streamAll streams doc through a new Stream in chunks of chunk bytes, into dst.
func streamAll(b *testing.B, p *Plan, opts StreamOptions, check func(*Outside) error, fn func(*Field, []byte) ([]byte, error), dst, doc []byte, chunk int) ([]byte, int) {
	s := p.NewStream(opts, check, fn)
	var err error
	for len(doc) > 0 {
		n := min(chunk, len(doc))
		// dst is reset for every chunk: a proxy forwards each chunk's output.
		if dst, err = s.Write(dst[:0], doc[:n]); err != nil {
			b.Fatal(err)
		}
		doc = doc[n:]
	}
	if _, err = s.Close(dst[:0]); err != nil {
		b.Fatal(err)
	}
	return dst, s.Values()
}

func BenchmarkStreamRatio(b *testing.B) {
	type input struct {
		name   string
		doc    []byte
		fs     []Field
		ndjson bool
		want   int
	}
	var inputs []input
	for _, size := range []struct {
		name string
		n    int
	}{{"1MiB", 1 << 20}, {"10MiB", 10 << 20}} {
		doc, fs := benchDoc(size.n, 10, "middle")
		inputs = append(inputs, input{"doc=" + size.name, doc, fs, false, 10})
		nd, nfs := ndjsonDoc(size.n)
		inputs = append(inputs, input{"ndjson=" + size.name, nd, nfs, true, 4 * bytes.Count(nd, []byte("\n"))})
	}
	for _, in := range inputs {
		p, err := NewPlan(in.fs, Options{})
		if err != nil {
			b.Fatal(err)
		}
		valid := func() {
			if !json.Valid(in.doc) {
				b.Fatal("invalid")
			}
		}
		if in.ndjson {
			valid = func() {
				for rest := in.doc; len(rest) > 0; {
					k := bytes.IndexByte(rest, '\n')
					if !json.Valid(rest[:k]) {
						b.Fatal("invalid")
					}
					rest = rest[k+1:]
				}
			}
		}
		for _, chunk := range []int{16 << 10, 64 << 10} {
			for _, ck := range []struct {
				name  string
				check func(*Outside) error
			}{{"none", nil}, {"compare", compareCheck}} {
				name := fmt.Sprintf("%s/chunk=%dKiB/check=%s", in.name, chunk>>10, ck.name)
				b.Run(name, func(b *testing.B) {
					opts := StreamOptions{NDJSON: in.ndjson}
					fn := sameSize()
					dst := make([]byte, 0, 2*chunk)
					ratio := alternate(b, len(in.doc), valid, func() {
						// n: a stream that skipped the fields would only look faster.
						if _, n := streamAll(b, p, opts, ck.check, fn, dst, in.doc, chunk); n != in.want {
							b.Fatalf("replaced %d values, want %d", n, in.want)
						}
					})
					b.ReportMetric(ratio, "x-json.Valid-throughput")
				})
			}
		}
	}
}
