package extproc

import (
	"context"
	"net"
	"runtime"
	"strconv"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// budgetOpts allows 64 KiB bodies and a budget of exactly two of them.
func budgetOpts(rec *limitRec) Options {
	return Options{MaxBodyBytes: 64 << 10, MemoryBudget: 2 * BodyCostFactor * 64 << 10, Observer: rec,
		MaxStreamsPerClient: 64, MaxStreamsPerTenant: 64, IdleTimeout: 300 * time.Millisecond}
}

// TestMemoryBudget: a body's cost is reserved at its headers (from content-length, else the
// largest body), refused with 503 and retry-after at once when the budget cannot hold it, checked
// again when the body is larger than announced, and given back exactly once on every path.
func TestMemoryBudget(t *testing.T) {
	const max = 64 << 10
	full := int64(BodyCostFactor * max)
	get := fuzzMessage(1 << 3)
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, e *testEnv, rec *limitRec)
	}{
		{"success", func(t *testing.T, e *testEnv, rec *limitRec) {
			r := openRaw(t, e.envoy)
			body := paddedBody(1000)
			if _, err := r.ask(postHeaders("t1", "", len(body))); err != nil {
				t.Fatal(err)
			}
			if got := e.srv.Stats().ReservedBytes; got != BodyCostFactor*1000 {
				t.Fatalf("reserved %d after headers, want %d", got, BodyCostFactor*1000)
			}
			resp, err := r.ask(requestBody(body))
			if err != nil || resp.GetRequestBody() == nil {
				t.Fatalf("body: %v, %v", resp, err)
			}
			// Once sent, only the answer's body stays reserved (gRPC may still hold it) until the
			// next message shows the peer read it.
			answer := int64(len(resp.GetRequestBody().GetResponse().GetBodyMutation().GetBody()))
			deadline := time.Now().Add(5 * time.Second)
			for e.srv.Stats().ReservedBytes != answer {
				if time.Now().After(deadline) {
					t.Fatalf("reserved %d after the answer, want its body's %d", e.srv.Stats().ReservedBytes, answer)
				}
				time.Sleep(time.Millisecond)
			}
			if _, err := r.ask(fuzzMessage(3)); err != nil { // response headers
				t.Fatal(err)
			}
			if got, want := e.srv.Stats().ReservedBytes, int64(BodyCostFactor*e.srv.opts.MaxBodyBytes); got != want {
				t.Fatalf("reserved %d after response headers without content-length, want only the response body's %d", got, want)
			}
			_ = r.st.CloseSend()
		}},
		{"no content-length reserves the largest body", func(t *testing.T, e *testEnv, rec *limitRec) {
			r := openRaw(t, e.envoy)
			if _, err := r.ask(postHeaders("t1", "", -1)); err != nil {
				t.Fatal(err)
			}
			if got := e.srv.Stats().ReservedBytes; got != full {
				t.Fatalf("reserved %d, want %d", got, full)
			}
			r.cancel() // client reset
		}},
		{"over budget at headers", func(t *testing.T, e *testEnv, rec *limitRec) {
			for range 2 {
				if _, err := openRaw(t, e.envoy).ask(postHeaders("t1", "", max)); err != nil {
					t.Fatal(err)
				}
			}
			r := openRaw(t, e.envoy)
			resp, err := r.ask(postHeaders("t1", "", 10))
			r.immediate(resp, err, 503, "rkms is busy, try again")
			if rec.count(RefusedMemory) != 1 {
				t.Errorf("refusals %v", rec.refused)
			}
			if c := e.srv.Stats().ReservedBytes; c != 2*full {
				t.Fatalf("reserved %d, want %d", c, 2*full)
			}
		}},
		{"content-length lied, over budget at body", func(t *testing.T, e *testEnv, rec *limitRec) {
			for _, cl := range []int{-1, max / 2} { // leave half a body's cost
				if _, err := openRaw(t, e.envoy).ask(postHeaders("t1", "", cl)); err != nil {
					t.Fatal(err)
				}
			}
			r := openRaw(t, e.envoy)
			if _, err := r.ask(postHeaders("t1", "", 100)); err != nil {
				t.Fatal(err)
			}
			resp, err := r.ask(requestBody(paddedBody(max - 1000)))
			r.immediate(resp, err, 503, "rkms is busy, try again")
		}},
		{"content-length lied, within budget", func(t *testing.T, e *testEnv, rec *limitRec) {
			r := openRaw(t, e.envoy)
			if _, err := r.ask(postHeaders("t1", "", 100)); err != nil {
				t.Fatal(err)
			}
			if resp, err := r.ask(requestBody(paddedBody(max - 1000))); err != nil || resp.GetRequestBody() == nil {
				t.Fatalf("body: %v, %v", resp, err)
			}
			_ = r.st.CloseSend()
		}},
		{"body refused (not JSON)", func(t *testing.T, e *testEnv, rec *limitRec) {
			r := openRaw(t, e.envoy)
			if _, err := r.ask(postHeaders("t1", "", 10)); err != nil {
				t.Fatal(err)
			}
			resp, err := r.ask(requestBody([]byte("not json!!")))
			if err != nil || resp.GetImmediateResponse().GetStatus().GetCode() != 400 {
				t.Fatalf("bad body: %v, %v", resp, err)
			}
			_ = r.st.CloseSend()
		}},
		{"body after end of stream", func(t *testing.T, e *testEnv, rec *limitRec) {
			r := openRaw(t, e.envoy)
			if _, err := r.ask(get); err != nil {
				t.Fatal(err)
			}
			if _, err := r.ask(requestBody(paddedBody(1000))); status.Code(err) != codes.FailedPrecondition {
				t.Fatalf("unannounced body: %v, want FailedPrecondition", err)
			}
			if rec.count(RefusedProtocol) != 1 {
				t.Errorf("refusals %v", rec.refused)
			}
		}},
		{"idle timeout with a reservation", func(t *testing.T, e *testEnv, rec *limitRec) {
			r := openRaw(t, e.envoy)
			if _, err := r.ask(postHeaders("t1", "", max)); err != nil {
				t.Fatal(err)
			}
			if _, err := r.st.Recv(); status.Code(err) != codes.DeadlineExceeded {
				t.Fatalf("idle stream: %v", err)
			}
		}},
		{"response body", func(t *testing.T, e *testEnv, rec *limitRec) {
			r := openRaw(t, e.envoy)
			if _, err := r.ask(get); err != nil {
				t.Fatal(err)
			}
			body := []byte(`{"ssn":null}`)
			rh := &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{
				Headers: hdrs{{":status", "200"}, {"content-type", "application/json"}, {"content-length", strconv.Itoa(len(body))}}.proto()}}}
			if _, err := r.ask(rh); err != nil {
				t.Fatal(err)
			}
			if got := e.srv.Stats().ReservedBytes; got != int64(BodyCostFactor*len(body)) {
				t.Fatalf("reserved %d after response headers", got)
			}
			resp, err := r.ask(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{
				ResponseBody: &extprocv3.HttpBody{Body: body, EndOfStream: true}}})
			if err != nil || resp.GetResponseBody() == nil {
				t.Fatalf("response body: %v, %v", resp, err)
			}
			_ = r.st.CloseSend()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &limitRec{}
			e := newTestEnv(t, budgetOpts(rec))
			// Cleanups run last first: this one after the subtest's streams are cancelled.
			t.Cleanup(func() { waitReleased(t, e.srv) })
			tc.run(t, e, rec)
		})
	}
}

// TestBodyCostFactor measures what one large request body costs the server at its peak, per
// byte of body, and checks BodyCostFactor covers it: the gRPC message buffer the body arrives in
// (1, held while decoding), the decoded request (measured), the rewritten body and its pooled
// buffer (measured) and the encoded answer (measured).
func TestBodyCostFactor(t *testing.T) {
	const size = 1 << 20
	srv, err := NewServer(loadPolicies(t), newFakeKeys(), Options{MaxBodyBytes: 2 * size})
	if err != nil {
		t.Fatal(err)
	}
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}})
	wire, err := proto.Marshal(requestBody(paddedBody(size)))
	if err != nil {
		t.Fatal(err)
	}
	p := srv.newProcessor(ctx)
	defer srv.freeProcessor(p)
	if _, err := p.handle(ctx, postHeaders("t1", "", size)); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var req extprocv3.ProcessingRequest
	if err := proto.Unmarshal(wire, &req); err != nil {
		t.Fatal(err)
	}
	resp, err := p.handle(ctx, &req)
	if err != nil || resp.GetRequestBody().GetResponse().GetBodyMutation() == nil {
		t.Fatalf("body not rewritten: %v, %v", resp, err)
	}
	answer, err := proto.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	factor := 1 + float64(after.TotalAlloc-before.TotalAlloc)/float64(len(wire))
	t.Logf("body %d bytes, answer %d bytes: %.2f bytes held per body byte (BodyCostFactor %d)", len(wire), len(answer), factor, BodyCostFactor)
	if factor > BodyCostFactor {
		t.Errorf("measured factor %.2f over BodyCostFactor %d", factor, BodyCostFactor)
	}
}

// TestUnreadAnswer: a peer that sends a body and never reads the answer leaves the encoded
// answer in gRPC's buffers (Send returned once it was queued): its body's bytes stay reserved;
// the idle timeout ends the stream, and its slot, shares and reservation are given back.
func TestUnreadAnswer(t *testing.T) {
	rec := &limitRec{}
	e := newTestEnv(t, Options{MaxBodyBytes: 2 << 20, IdleTimeout: 300 * time.Millisecond, Observer: rec})
	r := openRaw(t, e.envoy)
	body := paddedBody(1 << 20)
	if _, err := r.ask(postHeaders("t1", "", len(body))); err != nil {
		t.Fatal(err)
	}
	if err := r.st.Send(requestBody(body)); err != nil {
		t.Fatal(err)
	}
	// Never Recv: the 1 MiB answer cannot pass the client's flow-control window.
	deadline := time.Now().Add(10 * time.Second)
	for n := e.srv.Stats().ReservedBytes; n < int64(len(body)) || n >= 2*int64(len(body)); n = e.srv.Stats().ReservedBytes {
		if time.Now().After(deadline) || rec.count(RefusedIdleTimeout) > 0 {
			t.Fatalf("reserved %d while the answer waits unread, want its body's size (about %d)", n, len(body))
		}
		time.Sleep(time.Millisecond)
	}
	for rec.count(RefusedIdleTimeout) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no idle timeout while the answer was stuck in Send: %+v", e.srv.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitReleased(t, e.srv)
	waitNoHandlers(t)
}
