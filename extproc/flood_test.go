package extproc

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	testenv "github.com/rkms/rkms/internal/testing/env"
)

// Direct floods of the ext_proc port over loopback TCP (a real gRPC server, the production
// options). Real RSS through a separate rkms process is measured by the abuse tests; these
// check the server's own bounds.

// TestIdleStreamFlood: 2,000 streams from one client address send their request headers and
// then nothing. The client's share (MaxStreamsPerClient) holds 256 of them until the idle
// timeout; the others are answered 429 and ended at once. Meanwhile a well-behaved client is
// served (at least 99 % of its requests succeed).
func TestIdleStreamFlood(t *testing.T) {
	const idle, good = 2000, 200
	rec := &limitRec{}
	e := newTestEnv(t, Options{Observer: rec}) // the defaults: 1,024 streams, 256 per client
	// Several connections, as several Envoy workers: one carries at most MaxConcurrentStreams.
	attackers := make([]*fakeEnvoy, 4)
	for i := range attackers {
		attackers[i] = startServerTCP(t, e.srv)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var held, refused, other atomic.Int64
	var wg sync.WaitGroup
	for i := range idle {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := attackers[i%len(attackers)].client.Process(ctx)
			if err != nil {
				other.Add(1)
				return
			}
			if err := st.Send(postHeaders("t1", fmt.Sprintf("10.66.0.1:%d", 1024+i), 100)); err != nil {
				other.Add(1)
				return
			}
			resp, err := st.Recv()
			switch {
			case err == nil && resp.GetRequestHeaders() != nil:
				held.Add(1) // and then idle until the test ends
			case err == nil && resp.GetImmediateResponse().GetStatus().GetCode() == 429:
				refused.Add(1)
			default:
				other.Add(1)
			}
		}()
	}
	wg.Wait()
	if held.Load() != DefaultMaxConcurrentStreams/4 || refused.Load()+held.Load() != idle {
		t.Errorf("idle flood: %d held, %d refused 429, %d other; want %d held, the rest refused",
			held.Load(), refused.Load(), other.Load(), DefaultMaxConcurrentStreams/4)
	}
	// The well-behaved client, through its own Envoy connection, while the idle streams are held.
	ok := wellBehaved(t, e, good)
	if ok*100 < good*99 {
		t.Errorf("well-behaved client: %d of %d served during the flood", ok, good)
	}
	t.Logf("idle flood: %d held, %d refused; well-behaved client %d/%d", held.Load(), refused.Load(), ok, good)
	cancel()
	waitReleased(t, e.srv)
}

// heapSampler records the peak of the Go heap's object bytes until stopped.
type heapSampler struct {
	stop chan struct{}
	done chan uint64
}

func sampleHeap() *heapSampler {
	h := &heapSampler{stop: make(chan struct{}), done: make(chan uint64, 1)}
	go func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var peak uint64
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			select {
			case <-h.stop:
				h.done <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return h
}

func (h *heapSampler) peak() uint64 { close(h.stop); return <-h.done }

// floodOverhead is what the memory flood test allows on top of the budget: the client side of
// the test (each admitted stream's encoded body and the answer it decodes, about 2.5 MiB), the
// gRPC transports' buffers, and garbage not yet collected at the sampling instant (the test runs
// with GOGC=20).
const floodOverhead = 32 << 20

// TestMemoryFlood: 300 streams send request headers announcing 1 MiB, then (if admitted) a 1 MiB
// body, all at once, against a 32 MiB budget. Those the budget cannot hold are answered 503 at
// their headers; the others succeed; the Go heap stays under budget + floodOverhead (without the
// budget, the same flood took 1.28 GB).
func TestMemoryFlood(t *testing.T) {
	// About 300 MiB of traffic: skipped by -short like the real-component tests, and like them
	// never skipped in CI.
	testenv.Integration(t)
	const streams, size, budgetBytes = 300, 1 << 20, 32 << 20
	defer debug.SetGCPercent(debug.SetGCPercent(20))
	rec := &limitRec{}
	e := newTestEnv(t, Options{MemoryBudget: budgetBytes, MaxStreamsPerClient: 1024, MaxBodyBytes: 2 << 20, Observer: rec})
	fe := startServerTCP(t, e.srv)
	body := paddedBody(size)
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	baseline := s[0].Value.Uint64()
	h := sampleHeap()
	var okN, busy, other atomic.Int64
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := make(chan struct{})
	for i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			st, err := fe.client.Process(ctx)
			if err != nil {
				other.Add(1)
				return
			}
			defer func() { _ = st.CloseSend() }()
			if err := st.Send(postHeaders(fmt.Sprintf("t%d", i), "", size)); err != nil {
				other.Add(1)
				return
			}
			resp, err := st.Recv()
			if err != nil {
				other.Add(1)
				return
			}
			if ir := resp.GetImmediateResponse(); ir != nil {
				if ir.GetStatus().GetCode() == 503 {
					busy.Add(1)
				} else {
					other.Add(1)
				}
				return
			}
			if err := st.Send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{
				RequestBody: &extprocv3.HttpBody{Body: body, EndOfStream: true}}}); err != nil {
				other.Add(1)
				return
			}
			if resp, err := st.Recv(); err == nil && resp.GetRequestBody() != nil {
				okN.Add(1)
			} else {
				other.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	peak := h.peak()
	grown := int64(peak) - int64(baseline)
	t.Logf("memory flood: %d served, %d refused 503, %d other; heap peak %.1f MiB over the baseline (budget %d MiB)",
		okN.Load(), busy.Load(), other.Load(), float64(grown)/(1<<20), budgetBytes>>20)
	if other.Load() != 0 || okN.Load() == 0 || busy.Load() == 0 || rec.count(RefusedMemory) != int(busy.Load()) {
		t.Errorf("want only successes and 503 refusals at headers (some of each): %d ok, %d 503, %d other; refusals %v",
			okN.Load(), busy.Load(), other.Load(), rec.refused)
	}
	if grown > budgetBytes+floodOverhead {
		t.Errorf("heap grew by %d MiB, over budget (%d MiB) + overhead (%d MiB)", grown>>20, budgetBytes>>20, floodOverhead>>20)
	}
	waitReleased(t, e.srv)
}

// TestSilentStreamFlood: 2,000 streams from one ext_proc peer (127.0.0.2) that never send a
// message. They fill every slot; each stream beyond (theirs or another peer's) ends the oldest
// silent stream of that peer (RESOURCE_EXHAUSTED), so streams from another peer (127.0.0.1, as
// Envoy) keep being served. Before, the silent streams held every slot until
// FirstMessageTimeout and everyone else was refused.
func TestSilentStreamFlood(t *testing.T) {
	const silent, good = 2000, 200
	e := newTestEnv(t, Options{FirstMessageTimeout: time.Minute}) // the flood outlives the test's checks
	g := grpc.NewServer(e.srv.GRPCServerOptions()...)
	e.srv.Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	from := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	var attackers []extprocv3.ExternalProcessorClient
	for range 4 { // several connections, as several Envoy workers would open
		conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) { return from.DialContext(ctx, "tcp", addr) }))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		attackers = append(attackers, extprocv3.NewExternalProcessorClient(conn))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var refused, other atomic.Int64
	var wg sync.WaitGroup
	for i := range silent {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := attackers[i%len(attackers)].Process(ctx)
			if err != nil {
				other.Add(1)
				return
			}
			// Sending nothing: Recv returns when the server ends the stream.
			// Refusals come back at once; on a loaded machine "at once" can take a while, so the
			// wait is long and the server's own count is asserted below as well.
			rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
			defer rcancel()
			done := make(chan error, 1)
			go func() { _, err := st.Recv(); done <- err }()
			select {
			case err := <-done:
				if status.Code(err) == codes.ResourceExhausted {
					refused.Add(1)
				} else {
					other.Add(1)
				}
			case <-rctx.Done(): // held open by the server, as a silent stream is until its timeout
			}
		}()
	}
	wg.Wait()
	held := int64(silent) - refused.Load() - other.Load()
	if n := e.srv.Stats().Streams; n > DefaultMaxConcurrentStreams {
		t.Errorf("server holds %d streams, over its limit %d", n, DefaultMaxConcurrentStreams)
	}
	if held > DefaultMaxConcurrentStreams || refused.Load() < silent-DefaultMaxConcurrentStreams || other.Load() != 0 {
		t.Errorf("silent flood: %d held, %d refused, %d other; want at most %d held, the rest ended", held, refused.Load(), other.Load(), DefaultMaxConcurrentStreams)
	}
	ok := wellBehaved(t, e, good)
	if ok*100 < good*99 {
		t.Errorf("well-behaved client: %d of %d served during the silent flood", ok, good)
	}
	t.Logf("silent flood: %d held, %d refused; well-behaved client %d/%d", held, refused.Load(), ok, good)
	cancel()
	waitReleased(t, e.srv)
}

// wellBehaved sends n POST /patients for tenant t2 from client 10.0.0.7 through a fake Envoy of
// its own connection to e's server, and returns how many were served (201).
func wellBehaved(t *testing.T, e *testEnv, n int) int {
	t.Helper()
	fe := startServerTCP(t, e.srv)
	ok := 0
	for i := range n {
		x := fe.do(envoyCfg{sourceAddress: fmt.Sprintf("10.0.0.7:%d", 2000+i)}, jsonReq("POST", "/patients", "t2", patient), recorderApp(e.app))
		if x.client.status == 201 {
			ok++
		}
	}
	return ok
}
