package extproc_test

import (
	"context"
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
	"google.golang.org/protobuf/proto"

	"github.com/rkms/rkms/extproc"
	"github.com/rkms/rkms/internal/load"
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

type benchTarget struct {
	name   string
	client extprocv3.ExternalProcessorClient
	x      *load.Exchange
}

// benchRig returns a load rig with benchTenants warm keys and the 1 KiB body with 3 fields.
func benchRig(b *testing.B) (*load.Rig, []byte) {
	b.Helper()
	rig, err := load.NewRig(b.TempDir())
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
	return []benchTarget{
		{"noop", serveLoopback(b, noop), load.NewExchange(body, benchTenants, false)},
		{"rkms", serveLoopback(b, rkms), load.NewExchange(body, benchTenants, true)},
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
			b.ReportAllocs()
			cpu0, n := cpuTime(b), 0
			for b.Loop() {
				if err := tg.x.Run(ctx, tg.client, n); err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(n), "cpu-ns/op")
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
// returns (rkms reuses the body buffer after that), and checks it. The answer to the request body
// is decoded again, to build the response body from it.
type memStream struct {
	extprocv3.ExternalProcessor_ProcessServer // nil: only Context, Recv and Send are called
	ctx                                       context.Context
	x                                         *load.Exchange
	n, i                                      int
	wire                                      *[]byte
	answers                                   [load.Messages]*extprocv3.ProcessingResponse
}

func (m *memStream) Context() context.Context { return m.ctx }

func (m *memStream) Recv() (*extprocv3.ProcessingRequest, error) {
	if m.i == load.Messages {
		return nil, io.EOF
	}
	return m.x.Message(m.i, m.n, m.answers[:m.i]), nil
}

func (m *memStream) Send(resp *extprocv3.ProcessingResponse) error {
	wire, err := proto.MarshalOptions{}.MarshalAppend((*m.wire)[:0], resp)
	if err != nil {
		return err
	}
	*m.wire = wire
	if err := m.x.Check(m.i, resp); err != nil {
		return err
	}
	m.answers[m.i] = resp
	if m.i == 1 {
		m.answers[1] = &extprocv3.ProcessingResponse{}
		if err := proto.Unmarshal(wire, m.answers[1]); err != nil {
			return err
		}
	}
	m.i++
	return nil
}

// BenchmarkProcess runs the same streams as BenchmarkStream through each server's Process
// method over an in-memory stream: no gRPC, no network. It measures the server's own work per
// stream (rkms: policy, headers, two body transforms with 3 seals and 3 opens, key lookups) beside
// the no-op server's, which is the floor.
func BenchmarkProcess(b *testing.B) {
	rig, body := benchRig(b)
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs(extproc.PolicyMetadataKey, load.PolicyName))
	for _, tc := range []struct {
		name    string
		process func(extprocv3.ExternalProcessor_ProcessServer) error
		x       *load.Exchange
	}{
		{"noop", (&load.Noop{}).Process, load.NewExchange(body, benchTenants, false)},
		{"rkms", rig.Server.Process, load.NewExchange(body, benchTenants, true)},
	} {
		b.Run("server="+tc.name, func(b *testing.B) {
			b.ReportAllocs()
			n, wire := 0, new([]byte)
			for b.Loop() {
				st := &memStream{ctx: ctx, x: tc.x, n: n, wire: wire}
				if err := tc.process(st); err != nil || st.i != load.Messages {
					b.Fatalf("stream %d: %d answers, %v", n, st.i, err)
				}
				n++
			}
		})
	}
}
