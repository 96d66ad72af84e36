package extproc

import (
	"bytes"
	"testing"
)

func TestBodyPool(t *testing.T) {
	var bp bodyPool
	for _, tc := range []struct {
		name  string
		n     int
		write int // bytes written before put
	}{
		{"small", 16, 16},
		{"grown past the request", 64, 1000},
		{"partial write", 4096, 10},
		{"above the pooled size", maxPooledBody + 1, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bp.get(tc.n)
			if len(*b) != 0 || cap(*b) < tc.n {
				t.Fatalf("get(%d): len %d cap %d", tc.n, len(*b), cap(*b))
			}
			*b = append(*b, bytes.Repeat([]byte{'s'}, tc.write)...)
			used := (*b)[:cap(*b)]
			bp.put(b)
			if i := bytes.IndexFunc(used, func(r rune) bool { return r != 0 }); i >= 0 {
				t.Errorf("put left byte %d of %d uncleared", i, len(used))
			}
		})
	}
}

// TestTransformLendsBodies checks the life of a rewritten body's buffer: lent with the response
// that carries it, back in the pool (cleared) once released, and not lent when nothing changed.
func TestTransformLendsBodies(t *testing.T) {
	e := newTestEnv(t, Options{})
	pol := e.srv.byName["patients"]
	for _, tc := range []struct {
		name     string
		body     string
		wantLent bool
	}{
		{"fields sealed", patient, true},
		{"no selected field", `{"name":"Ada"}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, buf, n, err := e.srv.transform(t.Context(), phaseRequest, pol, &pol.request, "tenant-t1", "", []byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if (buf != nil) != tc.wantLent || (n > 0) != tc.wantLent || (out != nil) != tc.wantLent {
				t.Fatalf("out %q, buf %v, n %d; want lent %v", out, buf != nil, n, tc.wantLent)
			}
			if buf == nil {
				return
			}
			if &(*buf)[:1][0] != &out[:1][0] {
				t.Fatal("the lent buffer does not back the returned body")
			}
			p := &processor{s: e.srv}
			p.lend(buf)
			p.release()
			if p.lent != nil || len(*buf) != 0 {
				t.Fatal("release kept the buffer")
			}
			if bytes.ContainsAny(out[:cap(out)], "\"rkms:") {
				t.Errorf("released body not cleared: %q", out)
			}
		})
	}
}
