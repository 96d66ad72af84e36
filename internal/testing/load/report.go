package load

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"
)

// Targets of the project (issue 5), as ratios within one run.
const (
	TargetCPURatio        = 1.25 // rkms server CPU per request / no-op server's
	TargetEnvoyThroughput = 0.7  // rkms via Envoy / no-op ext_proc via Envoy, each at its maximum (closed loop)
	TargetEnvoyP99Extra   = time.Millisecond
	TargetRSS             = 150_000_000 // bytes (150 MB), with 100,000 cached keys
	TargetRSSKeys         = 100000
)

// Report is everything one run measured.
type Report struct {
	Flags    Flags
	CPUModel string
	NumCPU   int
	Load     string // /proc/loadavg at the start
	Go       string
	WarmTime time.Duration
	Idle     Stats       // rkms after warming, before load
	Final    Stats       // rkms at the end
	LoadRSS  int64       // largest VmRSS of rkms sampled (every 200 ms) while the load ran
	Direct   []*Measured // fixed concurrency
	// DirectFixed is the direct comparison at one offered rate, DirectRate streams/s.
	DirectFixed []*Measured
	DirectRate  float64
	// EnvoyMax is each Envoy configuration at its maximum throughput (closed loop, MaxWorkers
	// clients); Envoy the same at one offered rate, Rate (half the no-op's maximum).
	EnvoyMax []*Measured
	Rate     float64
	Envoy    []*Measured
}

func (r *Report) machine() error {
	r.NumCPU, r.Go = runtime.NumCPU(), runtime.Version()
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				r.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		r.Load = strings.TrimSpace(string(b))
	}
	return nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func ms(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d)/float64(time.Millisecond)) }

func verdict(ok bool) string {
	if ok {
		return "MET"
	}
	return "MISSED"
}

// Print writes the report as text.
func (r *Report) Print(w io.Writer) {
	f := r.Flags
	fmt.Fprintf(w, "rkms-load: %s, %d CPUs, %s, load average at start %s\n", r.CPUModel, r.NumCPU, r.Go, r.Load)
	fmt.Fprintf(w, "body %d B with %d tagged fields; %d tenants (keys) warmed in %s; %s per configuration in %d alternating rounds\n\n",
		f.BodySize, TaggedFields, f.Keys, r.WarmTime.Round(time.Millisecond), f.Duration, f.Rounds)

	fmt.Fprintf(w, "(1) ext_proc server over loopback gRPC, %d streams in flight (4 messages per stream)\n", f.Concurrency)
	var kms, st uint64
	var reqs int
	var rss int64
	if len(r.Direct) == 2 {
		printDirect(w, r.Direct)
		rk := r.Direct[1]
		kms, st, reqs, rss = rk.KMS, rk.Store, rk.Result.Requests, rk.MaxRSS
	}
	if len(r.DirectFixed) == 2 {
		fmt.Fprintf(w, "\n(1b) the same at %.0f streams/s offered to each (half the no-op's rate above; open loop, latency from the scheduled start)\n", r.DirectRate)
		printDirect(w, r.DirectFixed)
		rk := r.DirectFixed[1]
		kms, st, reqs, rss = kms+rk.KMS, st+rk.Store, reqs+rk.Result.Requests, max(rss, rk.MaxRSS)
	}
	if len(r.Direct) == 2 || len(r.DirectFixed) == 2 {
		fmt.Fprintln(w, "* GC est.: the Go runtime's estimate of its collector's CPU per stream (phases' wall time x GOMAXPROCS,\n  idle marking included): it compares the two servers' collectors, it is not a CPU measurement")
	}
	if len(r.EnvoyMax) == 3 {
		fmt.Fprintf(w, "\n(2) client -> Envoy (1 worker) -> app, the same PUT of %d B for every configuration, each at its maximum: %d clients, closed loop\n",
			f.BodySize, f.MaxWorkers)
		printEnvoy(w, r.EnvoyMax)
		noop, rk := r.EnvoyMax[1], r.EnvoyMax[2]
		tr := rk.Result.Throughput() / noop.Result.Throughput()
		pairedTr := pairedMedian(rk.Rounds, noop.Rounds, func(a, b *Result) float64 { return a.Throughput() / b.Throughput() })
		fmt.Fprintf(w, "throughput rkms/no-op per round:")
		for i := range min(len(rk.Rounds), len(noop.Rounds)) {
			fmt.Fprintf(w, " %.2f", rk.Rounds[i].Throughput()/noop.Rounds[i].Throughput())
		}
		fmt.Fprintf(w, "\nthroughput rkms/no-op = %.2fx overall, %.2fx median of rounds (target >= %.2fx): %s\n",
			tr, pairedTr, TargetEnvoyThroughput, verdict(pairedTr >= TargetEnvoyThroughput))
		kms, st, reqs, rss = kms+rk.KMS, st+rk.Store, reqs+rk.Result.Requests, max(rss, rk.MaxRSS)
	}
	if len(r.Envoy) == 3 {
		fmt.Fprintf(w, "\n(2b) the same at %.0f req/s offered to each (half the no-op's maximum above; open loop, latency from the scheduled start)\n", r.Rate)
		printEnvoy(w, r.Envoy)
		noop, rk := r.Envoy[1], r.Envoy[2]
		extra := rk.Result.Percentile(0.99) - noop.Result.Percentile(0.99)
		pairedExtra := time.Duration(pairedMedian(rk.Rounds, noop.Rounds, func(a, b *Result) float64 {
			return float64(a.Percentile(0.99) - b.Percentile(0.99))
		}))
		fmt.Fprintf(w, "per round (rkms - no-op, back to back):")
		for i := range min(len(rk.Rounds), len(noop.Rounds)) {
			fmt.Fprintf(w, " %s", ms(rk.Rounds[i].Percentile(0.99)-noop.Rounds[i].Percentile(0.99)))
		}
		fmt.Fprintln(w, " ms")
		fmt.Fprintf(w, "p99 rkms - no-op = %s ms overall, %s ms median of rounds (target <= %s ms): %s\n",
			ms(extra), ms(pairedExtra), ms(TargetEnvoyP99Extra), verdict(pairedExtra <= TargetEnvoyP99Extra))
		kms, st, reqs, rss = kms+rk.KMS, st+rk.Store, reqs+rk.Result.Requests, max(rss, rk.MaxRSS)
	}
	fmt.Fprintf(w, "\nsteady state, warm keys: %d KMS calls and %d store calls in %d rkms requests (target 0 and 0): %s\n",
		kms, st, reqs, verdict(kms == 0 && st == 0 && reqs > 0))
	memLimit := envOr("GOMEMLIMIT", "off")
	if f.MemLimit != "" {
		memLimit = f.MemLimit
	}
	fmt.Fprintf(w, "rkms memory: %d cached keys; VmRSS %.1f MiB after warming, max %.1f MiB under load (sampled every 200 ms), VmHWM %.1f MiB (warm-up included); Go heap live %.1f MiB after warming, %.1f MiB at the end (GOGC=%s GOMEMLIMIT=%s)\n",
		r.Final.CacheEntries, mib(r.Idle.RSS), mib(max(rss, r.LoadRSS)), mib(r.Final.HWM), mib(r.Idle.HeapLive), mib(r.Final.HeapLive),
		envOr("GOGC", "100"), memLimit)
	if f.KeepStore {
		fmt.Fprintln(w, "(the in-memory key store, a stand-in for DynamoDB, stayed in the rkms process: -keep-store)")
	} else {
		fmt.Fprintln(w, "(the in-memory key store, a stand-in for DynamoDB, was released after warming; later store calls would fail and are counted above)")
	}
	ok := r.Final.CacheEntries >= TargetRSSKeys && max(rss, r.LoadRSS) < TargetRSS
	fmt.Fprintf(w, "memory target (RSS under load < %d MB = %.1f MiB with >= %d cached keys): %s\n", TargetRSS/1_000_000, mib(TargetRSS), TargetRSSKeys, verdict(ok))
}

// printEnvoy prints the rows of the three Envoy configurations.
func printEnvoy(w io.Writer, ms2 []*Measured) {
	fmt.Fprintf(w, "%-14s %10s %9s %9s %9s\n", "configuration", "req/s", "p50 ms", "p99 ms", "errors")
	for _, m := range ms2 {
		fmt.Fprintf(w, "%-14s %10.0f %9s %9s %9d\n", m.Name, m.Result.Throughput(),
			ms(m.Result.Percentile(0.5)), ms(m.Result.Percentile(0.99)), m.Result.Errors)
	}
}

// printDirect prints the no-op and rkms rows of a direct comparison and the CPU verdict.
func printDirect(w io.Writer, ms2 []*Measured) {
	fmt.Fprintf(w, "%-14s %10s %9s %9s %9s %14s %10s %10s %12s\n", "server", "streams/s", "p50 ms", "p99 ms", "p99.9 ms", "CPU/stream µs", "RSS MiB", "GC cycles", "GC est. µs*")
	for _, m := range ms2 {
		gcPer := 0.0
		if m.Result.Requests > 0 {
			gcPer = float64(m.GCCPU) / 1e3 / float64(m.Result.Requests)
		}
		fmt.Fprintf(w, "%-14s %10.0f %9s %9s %9s %14.1f %10.1f %10d %12.1f\n", m.Name, m.Result.Throughput(),
			ms(m.Result.Percentile(0.5)), ms(m.Result.Percentile(0.99)), ms(m.Result.Percentile(0.999)),
			float64(m.CPUPerRequest())/1e3, mib(m.MaxRSS), m.GCCycles, gcPer)
	}
	noop, rk := ms2[0], ms2[1]
	ratio := float64(rk.CPUPerRequest()) / float64(noop.CPUPerRequest())
	fmt.Fprintf(w, "CPU per request rkms/no-op per round:")
	for i := range min(len(rk.Rounds), len(noop.Rounds)) {
		a := float64(rk.RoundCPU[i]) / float64(max(rk.Rounds[i].Requests, 1))
		b := float64(noop.RoundCPU[i]) / float64(max(noop.Rounds[i].Requests, 1))
		fmt.Fprintf(w, " %.2f", a/b)
	}
	fmt.Fprintf(w, "\nCPU per request rkms/no-op = %.2fx overall (target <= %.2fx): %s\n", ratio, TargetCPURatio, verdict(ratio <= TargetCPURatio))
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
