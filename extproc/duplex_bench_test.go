package extproc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/rkms/rkms/extproc/jsonfield"
	"github.com/rkms/rkms/extproc/policy"
)

// BenchmarkDuplexImport streams 10 MiB of NDJSON (4 tagged fields among 11 members a line) in
// 64 KiB chunks through what a streamed request body on an encrypt route runs (duplex.go's
// openStream): the policy's plan, its tripwire guard (policy.Guard.Check) and, for
// transform=seal, the real transformer sealing every field (fake in-memory keys, already
// fetched, as prefetch leaves them). It times the stream and json.Valid on each line
// alternately and reports the stream's throughput as a multiple of json.Valid's
// (x-json.Valid-throughput); transform=same replaces each value with a string of its size
// instead of sealing, so that the figure is the guard's and jsonfield's, comparable with
// jsonfield's BenchmarkStreamRatio/ndjson=10MiB/chunk=64KiB/check=compare. Compare runs with
// benchstat:
//
//	go test ./extproc -run '^$' -bench 'DuplexImport' -count 5 > new.txt && benchstat old.txt new.txt
func BenchmarkDuplexImport(b *testing.B) {
	set, err := policy.Compile([]policy.Config{{
		Name: "imports", KeyID: "tenant-{header:x-tenant-id}",
		Request: policy.Direction{Stream: true, Encrypt: []policy.Field{{Path: "$.ssn"}, {Path: "$.email"}, {Path: "$.phone"}, {Path: "$.dob"}}},
	}})
	if err != nil {
		b.Fatal(err)
	}
	pol := set.Policies()[0]
	fs := pol.Request()
	doc := benchNDJSON(10 << 20)
	lines := bytes.Count(doc, []byte("\n"))
	keys := newFakeKeys()
	ctx := context.Background()
	var guard policy.Guard
	check := guard.Check
	valid := func() {
		for rest := doc; len(rest) > 0; {
			k := bytes.IndexByte(rest, '\n')
			if !json.Valid(rest[:k]) {
				b.Fatal("invalid")
			}
			rest = rest[k+1:]
		}
	}
	const chunk = 64 << 10
	xs := append([]byte{'"'}, bytes.Repeat([]byte{'x'}, 64)...) // the values are shorter
	for _, tr := range []string{"same", "seal"} {
		b.Run("ndjson=10MiB/chunk=64KiB/check=guard/transform="+tr, func(b *testing.B) {
			dst := make([]byte, 0, 4*chunk)
			var repl []byte
			run := func() {
				guard.Reset(pol, nil) // as openStream does
				t := newTransformer(keys, phaseRequest, pol, fs, "tenant-t1", "", nil)
				t.maxFields = 1 << 62
				kctx := withKeyTimeout(ctx, time.Minute)
				if err := t.currentKey(kctx); err != nil {
					b.Fatal(err)
				}
				fn := func(f *jsonfield.Field, raw []byte) ([]byte, error) { return t.field(kctx, f, raw) }
				if tr == "same" {
					fn = func(_ *jsonfield.Field, raw []byte) ([]byte, error) {
						repl = append(append(repl[:0], xs[:len(raw)-1]...), '"')
						return repl, nil
					}
				}
				s := newBodyStream(fs.Plan(), true, check, fn)
				for rest := doc; len(rest) > 0; {
					n := min(chunk, len(rest))
					if dst, err = s.Write(dst[:0], rest[:n]); err != nil {
						b.Fatal(err)
					}
					rest = rest[n:]
				}
				if _, err = s.Close(dst[:0]); err != nil {
					b.Fatal(err)
				}
				// A stream that skipped the fields would only look faster.
				if n := s.(*jsonfield.Stream).Values(); n != 4*lines {
					b.Fatalf("replaced %d values, want %d", n, 4*lines)
				}
			}
			ratio := benchAlternate(b, len(doc), valid, run)
			b.ReportMetric(ratio, "x-json.Valid-throughput")
		})
	}
}

// benchNDJSON builds about size bytes of the NDJSON records of jsonfield's stream benchmark.
func benchNDJSON(size int) []byte {
	var doc []byte
	for i := 0; len(doc) < size; i++ {
		doc = fmt.Appendf(doc, `{"id":%d,"name":"user number %d","ssn":"%03d-%02d-%04d","email":"u%d@example.com",`+
			`"phone":"+1-555-%04d","dob":"19%02d-%02d-%02d","address":{"street":"%d Main Street","city":"Springfield",`+
			`"zip":"%05d"},"tags":["alpha","b\"eta\"","caf\u00e9"],"active":%t,"score":%d.%02d}`+"\n",
			i, i, i%1000, i%100, i%10000, i, i%10000, i%100, i%12+1, i%28+1, i, i*13%100000, i%3 == 0, i%1000, i%100)
	}
	return doc
}

// benchAlternate runs x and y in turn in the benchmark loop and returns the ratio of their
// total times: alternating cancels the drift of a busy machine.
func benchAlternate(b *testing.B, size int, x, y func()) float64 {
	b.ReportAllocs()
	b.SetBytes(int64(size))
	var tx, ty time.Duration
	for b.Loop() {
		t0 := time.Now()
		x()
		t1 := time.Now()
		y()
		t2 := time.Now()
		tx += t1.Sub(t0)
		ty += t2.Sub(t1)
	}
	return float64(tx) / float64(ty)
}
