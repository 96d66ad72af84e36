package extproc_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"

	"github.com/rkms/rkms/extproc"
	"github.com/rkms/rkms/internal/testing/load"
)

// Stream benchmarks: one Envoy-shaped ext_proc stream (request headers, a 1 KiB JSON request
// body with 3 tagged fields, response headers, the sealed body as the response body) through an
// in-process gRPC server over loopback TCP, for rkms with warm keys (real keyring, in-memory
// store, software KMS) and for a no-op server answering the same messages. Compare runs with
// benchstat:
//
//	go test ./extproc -run '^$' -bench 'Stream' -count 6 > new.txt && benchstat old.txt new.txt
//
// cpu-ns/op is the CPU time of the whole process (client and server) per stream, from getrusage.

const benchTenants = 64

// benchTarget is one server under comparison. x plays the measured streams and checks only
// what costs both sides the same (no immediate response); verify also checks that rkms sealed
// and opened the fields, on one stream before and one after the measured loop, so that the
// harness's checks of rkms's output are not charged to rkms.
type benchTarget struct {
	name      string
	client    extprocv3.ExternalProcessorClient
	x, verify *load.Exchange
}

// check plays one verified stream.
func (tg benchTarget) check(b *testing.B, ctx context.Context, n int) {
	b.Helper()
	if err := tg.verify.Run(ctx, tg.client, n); err != nil {
		b.Fatalf("%s: verified stream %d: %v", tg.name, n, err)
	}
}

// benchRig returns a load rig with benchTenants warm keys and the 1 KiB body with 3 fields.
func benchRig(b *testing.B) (*load.Rig, []byte) {
	b.Helper()
	rig, err := load.NewRig(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rig.Close() })
	if err := rig.Warm(context.Background(), benchTenants); err != nil {
		b.Fatal(err)
	}
	body, err := load.Body(1024)
	if err != nil {
		b.Fatal(err)
	}
	return rig, body
}

func startBenchTargets(b *testing.B) []benchTarget {
	b.Helper()
	rig, body := benchRig(b)
	noop := grpc.NewServer()
	(&load.Noop{}).Register(noop)
	rkms := grpc.NewServer(rig.Server.GRPCServerOptions()...)
	rig.Server.Register(rkms)
	x := load.NewExchange(body, benchTenants, false)
	return []benchTarget{
		{"noop", serveLoopback(b, noop), x, x},
		{"rkms", serveLoopback(b, rkms), x, load.NewExchange(body, benchTenants, true)},
	}
}

func serveLoopback(b testing.TB, g *grpc.Server) extprocv3.ExternalProcessorClient {
	b.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = g.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close(); g.Stop() })
	return extprocv3.NewExternalProcessorClient(conn)
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkStream runs one stream at a time (latency) and 8 streams at a time (throughput).
func BenchmarkStream(b *testing.B) {
	ctx := load.PolicyContext(context.Background())
	for _, tg := range startBenchTargets(b) {
		b.Run("server="+tg.name, func(b *testing.B) {
			tg.check(b, ctx, 0)
			b.ReportAllocs()
			cpu0, n := cpuTime(b), 0
			for b.Loop() {
				if err := tg.x.Run(ctx, tg.client, n); err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(n), "cpu-ns/op")
			tg.check(b, ctx, n)
		})
		b.Run("server="+tg.name+"/parallel=8", func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(4) // 4 x GOMAXPROCS (2 here) = 8 streams in flight
			var mu sync.Mutex
			next := 0
			cpu0 := cpuTime(b)
			b.RunParallel(func(pb *testing.PB) {
				mu.Lock()
				n := next
				next += 1000
				mu.Unlock()
				for pb.Next() {
					if err := tg.x.Run(ctx, tg.client, n); err != nil {
						b.Error(err)
						return
					}
					n++
				}
			})
			b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
			tg.check(b, ctx, next)
		})
	}
}

// BenchmarkStreamRatio alternates blocks of rkms and no-op streams and reports the median ratio
// of their block times as "x-noop" (wall time per stream, client included), with each side's
// median ns per stream. Load that changes slower than a block cancels out of each ratio.
func BenchmarkStreamRatio(b *testing.B) {
	const block = 32
	ctx := load.PolicyContext(context.Background())
	tg := startBenchTargets(b)
	noop, rkms := tg[0], tg[1]
	noop.check(b, ctx, 0)
	rkms.check(b, ctx, 0)
	var ratios, ours, base []float64
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		t0 := time.Now()
		for range block {
			if err := rkms.x.Run(ctx, rkms.client, n); err != nil {
				b.Fatal(err)
			}
			n++
		}
		t1 := time.Now()
		for range block {
			if err := noop.x.Run(ctx, noop.client, n); err != nil {
				b.Fatal(err)
			}
		}
		t2 := time.Now()
		o, t := float64(t1.Sub(t0)), float64(t2.Sub(t1))
		ratios, ours, base = append(ratios, o/t), append(ours, o/block), append(base, t/block)
	}
	rkms.check(b, ctx, n)
	b.ReportMetric(median(ratios), "x-noop")
	b.ReportMetric(median(ours), "rkms-ns/stream")
	b.ReportMetric(median(base), "noop-ns/stream")
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// memStream is an in-memory ext_proc server stream that plays one Exchange stream: Recv
// returns its messages in turn (then io.EOF); Send encodes each answer, as gRPC does before Send
// returns (rkms reuses the body buffer after that). The body the answer to the request body
// carries (rkms: sealed; no-op: none, so the original) is copied into body, for the response
// body message: both sides copy about 1 KiB. Every answer is checked for an immediate response;
// with verify set, the exchange's checks of rkms's output run too (outside the measured loop).
type memStream struct {
	extprocv3.ExternalProcessor_ProcessServer // nil: only Context, Recv and Send are called
	ctx                                       context.Context
	x                                         *load.Exchange
	n, i                                      int
	wire, body                                *[]byte
	verify                                    bool
}

func (m *memStream) Context() context.Context { return m.ctx }

func (m *memStream) Recv() (*extprocv3.ProcessingRequest, error) {
	switch m.i {
	case load.Messages:
		return nil, io.EOF
	case 3:
		return m.x.ResponseBody(*m.body), nil
	}
	return m.x.Message(m.i, m.n, nil), nil
}

func (m *memStream) Send(resp *extprocv3.ProcessingResponse) error {
	wire, err := proto.MarshalOptions{}.MarshalAppend((*m.wire)[:0], resp)
	if err != nil {
		return err
	}
	*m.wire = wire
	if ir := resp.GetImmediateResponse(); ir != nil {
		return fmt.Errorf("message %d: immediate response %d", m.i, ir.GetStatus().GetCode())
	}
	if m.verify {
		if err := m.x.Check(m.i, resp); err != nil {
			return err
		}
	}
	if m.i == 1 {
		sealed := resp.GetRequestBody().GetResponse().GetBodyMutation().GetBody()
		if sealed == nil {
			sealed = m.x.ResponseBody(nil).GetResponseBody().GetBody()
		}
		*m.body = append((*m.body)[:0], sealed...)
	}
	m.i++
	return nil
}

// BenchmarkProcess runs the same streams as BenchmarkStream through each server's Process
// method over an in-memory stream: no gRPC, no network. It measures the server's own work per
// stream (rkms: policy, headers, two body transforms with 3 seals and 3 opens, key lookups) beside
// the no-op server's, which is the floor. The harness does the same for both inside the loop
// (encode each answer, copy the body for the response message); its checks that rkms really
// sealed and opened run on one stream before and one after the loop.
func BenchmarkProcess(b *testing.B) {
	rig, body := benchRig(b)
	// As gRPC would hand it over: the route's policy in the metadata, from a loopback peer (rkms
	// takes the policy name only from a verified or loopback peer).
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs(extproc.PolicyMetadataKey, load.PolicyName))
	ctx = peer.NewContext(ctx, &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}})
	for _, tc := range []struct {
		name    string
		process func(extprocv3.ExternalProcessor_ProcessServer) error
		x       *load.Exchange
	}{
		{"noop", (&load.Noop{}).Process, load.NewExchange(body, benchTenants, false)},
		{"rkms", rig.Server.Process, load.NewExchange(body, benchTenants, true)},
	} {
		b.Run("server="+tc.name, func(b *testing.B) {
			n, wire, sealed := 0, new([]byte), new([]byte)
			play := func(verify bool) {
				st := &memStream{ctx: ctx, x: tc.x, n: n, wire: wire, body: sealed, verify: verify}
				if err := tc.process(st); err != nil || st.i != load.Messages {
					b.Fatalf("stream %d: %d answers, %v", n, st.i, err)
				}
				n++
			}
			play(true)
			b.ReportAllocs()
			for b.Loop() {
				play(false)
			}
			play(true)
		})
	}
}

// BenchmarkStreamLarge is BenchmarkStream's single stream with larger bodies (64 KiB and 512
// KiB), for rkms only: it shows the cost of the server's fixed flow-control windows (64 KiB per
// stream, 1 MiB per connection) on bodies larger than a window.
func BenchmarkStreamLarge(b *testing.B) {
	ctx := load.PolicyContext(context.Background())
	rig, _ := benchRig(b)
	g := grpc.NewServer(rig.Server.GRPCServerOptions()...)
	rig.Server.Register(g)
	client := serveLoopbackLarge(b, g)
	for _, size := range []int{64 << 10, 512 << 10} {
		body, err := load.Body(size)
		if err != nil {
			b.Fatal(err)
		}
		x := load.NewExchange(body, benchTenants, false)
		b.Run(fmt.Sprintf("body=%dKiB", size>>10), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			n := 0
			for b.Loop() {
				if err := x.Run(ctx, client, n); err != nil {
					b.Fatal(err)
				}
				n++
			}
		})
	}
}

// serveLoopbackLarge is serveLoopback with a client that accepts messages as large as the
// sealed bodies.
func serveLoopbackLarge(b testing.TB, g *grpc.Server) extprocv3.ExternalProcessorClient {
	b.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = g.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20), grpc.MaxCallSendMsgSize(16<<20)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close(); g.Stop() })
	return extprocv3.NewExternalProcessorClient(conn)
}
