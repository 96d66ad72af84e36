package extproc

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/metadata"
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
	pol := e.pol("patients")
	for _, tc := range []struct {
		name     string
		body     string
		wantLent bool
	}{
		{"fields sealed", patient, true},
		{"no selected field", `{"name":"Ada"}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &processor{s: e.srv, pol: pol, keyID: "tenant-t1"}
			out, buf, n, err := p.transform(t.Context(), phaseRequest, pol.Request(), nil, []byte(tc.body))
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
			p = &processor{s: e.srv}
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

// TestFreeProcessorClears checks what a pooled processor keeps between streams: nothing of the
// stream (policy, key id, headers, answers) and, in the buffers it reuses, only zeros (the scratch
// buffer held the opened fields' plaintext).
func TestFreeProcessorClears(t *testing.T) {
	e := newTestEnv(t, Options{})
	ctx := metadata.NewIncomingContext(loopbackPeer(t.Context()), metadata.Pairs(PolicyMetadataKey, "patients"))
	p := e.srv.newProcessor(ctx)
	reqHdrs := hdrs{{":method", "POST"}, {":path", "/patients"}, {"content-type", "application/json"}, {"x-tenant-id", "t1"}}
	respHdrs := hdrs{{":status", "200"}, {"content-type", "application/json"}}
	var sealed []byte
	for i, msg := range []*extprocv3.ProcessingRequest{
		{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{Headers: reqHdrs.proto()}}},
		{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: []byte(patient), EndOfStream: true}}},
		{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{Headers: respHdrs.proto()}}},
		nil, // the response body: the sealed request body
	} {
		if msg == nil {
			msg = &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{Body: sealed, EndOfStream: true}}}
		}
		resp, err := p.handle(ctx, msg)
		if err != nil || resp.GetImmediateResponse() != nil {
			t.Fatalf("message %d: %v %v", i, resp.GetImmediateResponse(), err)
		}
		if i == 1 {
			sealed = bytes.Clone(resp.GetRequestBody().GetResponse().GetBodyMutation().GetBody())
		}
		if i == 3 && string(resp.GetResponseBody().GetResponse().GetBodyMutation().GetBody()) != patient {
			t.Fatalf("response body not opened: %s", resp.GetResponseBody().GetResponse().GetBodyMutation().GetBody())
		}
		p.release()
	}
	scratch, hs := p.scratch[:cap(p.scratch)], p.respHdrs[:cap(p.respHdrs)]
	if len(scratch) == 0 || len(hs) == 0 {
		t.Fatalf("the stream left no scratch (%d) or response headers (%d) to reuse", len(scratch), len(hs))
	}
	e.srv.freeProcessor(p)
	if i := bytes.IndexFunc(scratch, func(r rune) bool { return r != 0 }); i >= 0 {
		t.Errorf("scratch byte %d of %d not cleared", i, len(scratch))
	}
	for i, h := range hs {
		if h != (header{}) {
			t.Errorf("response header %d kept: %q", i, h.name)
		}
	}
	if p.pol != nil || p.keyID != "" || p.headers != nil || p.reqHeaders || p.s != nil || p.lent != nil ||
		p.hresp.r.Response != nil || p.bresp.r.Response != nil || len(p.scratch) != 0 || len(p.respHdrs) != 0 {
		t.Errorf("freed processor kept stream state: %+v", p)
	}
}

// TestScratchGrowthClearsOldArray: when a field's replacement outgrows the scratch buffer, the
// array it leaves behind may hold an earlier field's plaintext and must be cleared.
func TestScratchGrowthClearsOldArray(t *testing.T) {
	for _, tc := range []struct {
		name     string
		grow     bool
		wantZero bool
	}{
		{"grown: old array cleared", true, true},
		{"same array: kept as is", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := make([]byte, 0, 16)
			old = append(old, "123-45-6789"...)
			tr := &transformer{scratch: old}
			out := append(tr.scratch[:0], "short"...)
			if tc.grow {
				out = append(tr.scratch[:0], bytes.Repeat([]byte{'x'}, 64)...)
			}
			tr.keep(out)
			if zero := !bytes.ContainsAny(old[:cap(old)], "123456789"); zero != tc.wantZero {
				t.Fatalf("old array %q: cleared %v, want %v", old[:cap(old)], zero, tc.wantZero)
			}
			if &tr.scratch[:1][0] != &out[:1][0] {
				t.Fatal("keep did not adopt out")
			}
		})
	}
}

// TestTransformBodyOutgrowsBuffer seals a body whose ciphertexts make it far larger than the
// buffer sized for it (many one-character values), then opens it again: the grown body must be
// whole, and the buffer it left behind is cleared, not the new one.
func TestTransformBodyOutgrowsBuffer(t *testing.T) {
	e := newTestEnv(t, Options{})
	pol := e.pol("patients")
	var b strings.Builder
	b.WriteString(`{"cards":[`)
	for i := range 200 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"number":"%d"}`, i%10)
	}
	b.WriteString(`]}`)
	body := []byte(b.String())
	p := &processor{s: e.srv, pol: pol, keyID: "tenant-t1"}
	sealed, buf, n, err := p.transform(t.Context(), phaseRequest, pol.Request(), nil, body)
	if err != nil || n != 200 {
		t.Fatalf("seal: %d values, %v", n, err)
	}
	if limit := len(body) + len(body)/2 + 256; len(sealed) <= limit {
		t.Fatalf("sealed body %d bytes does not outgrow the %d-byte buffer: the test does not test growth", len(sealed), limit)
	}
	sealed = bytes.Clone(sealed)
	e.srv.bodies.put(buf)
	opened, buf, n, err := p.transform(t.Context(), phaseResponse, pol.Response(), nil, sealed)
	if err != nil || n != 200 || string(opened) != string(body) {
		t.Fatalf("open: %d values, %v, body equal %v", n, err, string(opened) == string(body))
	}
	e.srv.bodies.put(buf)
}
