package load

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/rkms/rkms/extproc"
)

// judged is one target judged in every round (configurations measured back to back) and, for
// the verdict, on the median over rounds: a stall of the whole machine in one round then does
// not decide (BENCHMARKS.md, "Load runs").
type judged struct {
	name   string
	rounds []float64
	target string             // "<= 1.15x"
	ok     func(float64) bool // the target on one value
}

// median of v (0 for none).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func (j judged) verdict() (float64, bool) {
	m := median(j.rounds)
	return m, len(j.rounds) > 0 && j.ok(m)
}

func (j judged) print(w io.Writer) {
	fmt.Fprintf(w, "  %s, target %s; per round:", j.name, j.target)
	for _, v := range j.rounds {
		fmt.Fprintf(w, " %.2f %s", v, verdict(j.ok(v)))
	}
	m, ok := j.verdict()
	fmt.Fprintf(w, "\n    median of rounds %.3f: %s\n", m, verdict(ok))
}

// perRound applies f to the paired rounds of a and b.
func perRound(a, b *Measured, f func(a, b *Result) float64) []float64 {
	var out []float64
	for i := range min(len(a.Rounds), len(b.Rounds)) {
		out = append(out, f(a.Rounds[i], b.Rounds[i]))
	}
	return out
}

func atMost(limit float64) func(float64) bool  { return func(v float64) bool { return v <= limit } }
func atLeast(limit float64) func(float64) bool { return func(v float64) bool { return v >= limit } }

// noiseBand is the relative round-to-round spread of one configuration's throughput: the
// largest deviation of a round from the median of its rounds. Measured on the baseline
// (Envoy without ext_proc) in the same run, it is how far that configuration moves against
// itself on this machine now; a difference within it cannot be told from noise.
func noiseBand(m *Measured) float64 {
	var v []float64
	for _, r := range m.Rounds {
		v = append(v, r.Throughput())
	}
	med := median(v)
	band := 0.0
	for _, x := range v {
		if med > 0 {
			band = max(band, abs(x/med-1))
		}
	}
	return band
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// Print writes the report as text: each section's table, its targets judged per round and on
// the median over rounds, and a summary of the verdicts.
func (r *Report) Print(w io.Writer) {
	f := r.Flags
	fmt.Fprintf(w, "rkms-load: %s, %d CPUs, %s\n", r.CPUModel, r.NumCPU, r.Go)
	fmt.Fprintf(w, "machine load (/proc/loadavg): at start %s; at end %s\n", r.LoadStart, r.LoadEnd)
	fmt.Fprintf(w, "machine stalls: %s\n", r.Stalls)
	fmt.Fprintf(w, "body %d B with %d tagged fields; %d tenants (keys) warmed in %s; %s per configuration in %d alternating rounds\n",
		f.BodySize, TaggedFields, f.Keys, r.WarmTime.Round(time.Millisecond), f.Duration, f.Rounds)
	var summary []string
	add := func(section string, j judged) {
		j.print(w)
		m, ok := j.verdict()
		summary = append(summary, fmt.Sprintf("%-7s %s: %s = %.3f (target %s)", verdict(ok), section, j.name, m, j.target))
	}

	var kms, st uint64
	var reqs int
	var rss int64
	tally := func(rk *Measured) {
		kms, st, reqs, rss = kms+rk.KMS, st+rk.Store, reqs+rk.Result.Requests, max(rss, rk.MaxRSS)
	}
	if len(r.Direct) == 2 {
		fmt.Fprintf(w, "\n(1) ext_proc servers over loopback gRPC, the same 4 messages per stream to both, %d streams in flight\n", f.Concurrency)
		printDirect(w, r.Direct)
		add("(1) direct", judged{name: "CPU per stream rkms/no-op", rounds: cpuRounds(r.Direct), target: fmt.Sprintf("<= %.2fx", TargetCPURatio), ok: atMost(TargetCPURatio)})
		tally(r.Direct[1])
	}
	if len(r.DirectFixed) == 2 {
		fmt.Fprintf(w, "\n(1b) context: the same at %.0f streams/s offered to each (half the no-op's rate above; open loop, latency from the scheduled start)\n", r.DirectRate)
		printDirect(w, r.DirectFixed)
		fmt.Fprintf(w, "  CPU per stream rkms/no-op per round:")
		for _, v := range cpuRounds(r.DirectFixed) {
			fmt.Fprintf(w, " %.2f", v)
		}
		fmt.Fprintf(w, "; median %.2f (context, no target)\n", median(cpuRounds(r.DirectFixed)))
		tally(r.DirectFixed[1])
	}
	if len(r.Direct) == 2 || len(r.DirectFixed) == 2 {
		fmt.Fprintln(w, "  * GC est.: the Go runtime's estimate of its collector's CPU per stream (phases' wall time x GOMAXPROCS,\n    idle marking included): it compares the two servers' collectors, it is not a CPU measurement")
	}
	if len(r.Routes) > 0 {
		fmt.Fprintf(w, "\n(2) client -> Envoy (envoy/ingress.yaml, 1 worker, jwt_authn in every configuration) -> app; configurations:\n")
		fmt.Fprintf(w, "  %-14s ext_proc and rbac (stamp check) filters removed\n", EnvoyNoFilter)
		fmt.Fprintf(w, "  %-14s ext_proc to the no-op server, the filter's 4-phase BUFFERED mode (headers SEND, bodies BUFFERED), no per-route override, no mode_override\n", EnvoyNoop)
		fmt.Fprintf(w, "  %-14s ext_proc to rkms; the configuration rkms envoy-config renders for the rig's policies; policy routes:\n", EnvoyRKMS)
		if rcs, err := RouteConfigs(); err == nil {
			for _, p := range []string{WritePolicy, ReadPolicy} {
				fmt.Fprintf(w, "  %-14s   policy %q: %s; rkms's own mode_override on top\n", "", p, describeMode(rcs[p].Mode))
				if rcs[p].ResponseOnly {
					fmt.Fprintf(w, "  %-14s     and, before it, its bodiless GET/HEAD route (response_only, stamp check off): %s\n", "", describeMode(extproc.ResponseOnlyMode()))
				}
			}
		}
	}
	for _, rt := range r.Routes {
		noop, rk := rt.Max[1], rt.Max[2]
		fmt.Fprintf(w, "\n(2) %s: each configuration at its maximum, %d clients, closed loop\n", rt.Kind, f.MaxWorkers)
		printEnvoy(w, rt.Max)
		add("(2) "+rt.Kind, judged{name: "max throughput rkms/no-op", target: fmt.Sprintf(">= %.2fx", TargetEnvoyThroughput), ok: atLeast(TargetEnvoyThroughput),
			rounds: perRound(rk, noop, func(a, b *Result) float64 { return a.Throughput() / b.Throughput() })})
		fmt.Fprintf(w, "(2) %s at %.0f req/s offered to each (half the 4-phase no-op's maximum; open loop, latency from the scheduled start)\n", rt.Kind, rt.Rate)
		printEnvoy(w, rt.Half)
		noop, rk = rt.Half[1], rt.Half[2]
		for _, q := range []struct {
			name string
			q    float64
		}{{"p50", 0.5}, {"p99", 0.99}} {
			add("(2) "+rt.Kind, judged{name: q.name + " rkms/no-op", target: fmt.Sprintf("<= %.2fx", TargetEnvoyLatency), ok: atMost(TargetEnvoyLatency),
				rounds: perRound(rk, noop, func(a, b *Result) float64 { return float64(a.Percentile(q.q)) / float64(b.Percentile(q.q)) })})
		}
		tally(rt.Max[2])
		tally(rt.Half[2])
	}
	if len(r.Health) == 2 {
		base, rk := r.Health[0], r.Health[1]
		fmt.Fprintf(w, "\n(3) unprotected GET %s (ext_proc and the stamp check left out of the route's filter chain, jwt_authn verifying nothing, a 1-byte body limit), %d clients, closed loop\n", HealthPath, f.MaxWorkers)
		printEnvoy(w, r.Health)
		fmt.Fprintf(w, "  ext_proc streams/messages rkms received during these runs: %d/%d in %d requests\n", rk.Streams, rk.Messages, rk.Result.Requests)
		okMsgs := rk.Messages == 0 && rk.Streams == 0 && rk.Result.Requests > 0
		summary = append(summary, fmt.Sprintf("%-7s (3) unprotected route: ext_proc messages = %d (target 0)", verdict(okMsgs), rk.Messages))
		band := max(MinNoiseBand, noiseBand(base))
		fmt.Fprintf(w, "  noise band %.1f%%: the larger of %.0f%% and the largest deviation of a %s round's throughput from the median of its rounds (%.1f%%)\n",
			100*band, 100*MinNoiseBand, EnvoyNoFilter, 100*noiseBand(base))
		add("(3) unprotected route", judged{name: "throughput rkms config/" + EnvoyNoFilter, target: fmt.Sprintf("1.00 ± %.2f", band),
			ok: func(v float64) bool { return abs(v-1) <= band }, rounds: perRound(rk, base, func(a, b *Result) float64 { return a.Throughput() / b.Throughput() })})
		if r := envoyCPURounds(rk, base); len(r) > 0 {
			fmt.Fprintf(w, "  context: Envoy CPU per request rkms config/%s per round:", EnvoyNoFilter)
			for _, v := range r {
				fmt.Fprintf(w, " %.2f", v)
			}
			fmt.Fprintf(w, "; median %.2f (less sensitive to other load on the machine than throughput)\n", median(r))
		}
	}

	okSteady := kms == 0 && st == 0 && reqs > 0
	fmt.Fprintf(w, "\nsteady state, warm keys: %d KMS calls and %d store calls in %d rkms requests (target 0 and 0): %s\n", kms, st, reqs, verdict(okSteady))
	summary = append(summary, fmt.Sprintf("%-7s steady state: %d KMS and %d store calls (target 0 and 0)", verdict(okSteady), kms, st))
	memLimit, gogc := envOr("GOMEMLIMIT", "off"), envOr("GOGC", "100")
	if f.MemLimit != "" {
		memLimit = f.MemLimit
	}
	if f.GOGC != "" {
		gogc = f.GOGC
	}
	fmt.Fprintf(w, "rkms memory: %d cached keys; VmRSS %.1f MiB after warming, max %.1f MiB under load (sampled every 200 ms), VmHWM %.1f MiB (warm-up included); Go heap live %.1f MiB after warming, %.1f MiB at the end (GOGC=%s GOMEMLIMIT=%s)\n",
		r.Final.CacheEntries, mib(r.Idle.RSS), mib(max(rss, r.LoadRSS)), mib(r.Final.HWM), mib(r.Idle.HeapLive), mib(r.Final.HeapLive),
		gogc, memLimit)
	if f.KeepStore {
		fmt.Fprintln(w, "(the in-memory key store, a stand-in for DynamoDB, stayed in the rkms process: -keep-store)")
	} else {
		fmt.Fprintln(w, "(the in-memory key store, a stand-in for DynamoDB, was released after warming; later store calls would fail and are counted above)")
	}
	okMem := r.Final.CacheEntries >= TargetRSSKeys && max(rss, r.LoadRSS) < TargetRSS
	summary = append(summary, fmt.Sprintf("%-7s memory: max VmRSS %.1f MiB with %d cached keys (target < %.1f MiB with >= %d)", verdict(okMem),
		mib(max(rss, r.LoadRSS)), r.Final.CacheEntries, mib(TargetRSS), TargetRSSKeys))
	fmt.Fprintf(w, "\nverdicts (median over rounds; machine load at start %s, at end %s; stalls: %s):\n  %s\n",
		r.LoadStart, r.LoadEnd, r.Stalls, strings.Join(summary, "\n  "))
}

// cpuRounds is rkms's CPU per stream over the no-op's, per round, of a direct comparison.
func cpuRounds(ms2 []*Measured) []float64 {
	noop, rk := ms2[0], ms2[1]
	var out []float64
	for i := range min(len(rk.Rounds), len(noop.Rounds)) {
		a := float64(rk.RoundCPU[i]) / float64(max(rk.Rounds[i].Requests, 1))
		b := float64(noop.RoundCPU[i]) / float64(max(noop.Rounds[i].Requests, 1))
		out = append(out, a/max(b, 1))
	}
	return out
}

// printEnvoy prints the rows of the Envoy configurations; msgs/req is the ext_proc messages the
// configuration's server received per request ("-" without ext_proc).
func printEnvoy(w io.Writer, ms2 []*Measured) {
	fmt.Fprintf(w, "  %-14s %10s %9s %9s %9s %9s %16s %17s\n", "configuration", "req/s", "p50 ms", "p99 ms", "msgs/req", "errors", "Envoy CPU µs/req", "server CPU µs/req")
	for _, m := range ms2 {
		per, server := "-", "-"
		if m.Name != EnvoyNoFilter && m.Result.Requests > 0 {
			per = fmt.Sprintf("%.2f", float64(m.Messages)/float64(m.Result.Requests))
			server = fmt.Sprintf("%.1f", float64(m.CPUPerRequest())/1e3)
		}
		fmt.Fprintf(w, "  %-14s %10.0f %9s %9s %9s %9d %16.1f %17s\n", m.Name, m.Result.Throughput(),
			ms(m.Result.Percentile(0.5)), ms(m.Result.Percentile(0.99)), per, m.Result.Errors, float64(m.EnvoyCPUPerRequest())/1e3, server)
	}
	fmt.Fprintf(w, "  (server: the ext_proc server's process; Envoy and server CPU from /proc and getrusage over the measured runs)\n")
}

// printDirect prints the no-op and rkms rows of a direct comparison.
func printDirect(w io.Writer, ms2 []*Measured) {
	fmt.Fprintf(w, "  %-14s %10s %9s %9s %9s %14s %10s %10s %12s\n", "server", "streams/s", "p50 ms", "p99 ms", "p99.9 ms", "CPU/stream µs", "RSS MiB", "GC cycles", "GC est. µs*")
	for _, m := range ms2 {
		gcPer := 0.0
		if m.Result.Requests > 0 {
			gcPer = float64(m.GCCPU) / 1e3 / float64(m.Result.Requests)
		}
		fmt.Fprintf(w, "  %-14s %10.0f %9s %9s %9s %14.1f %10.1f %10d %12.1f\n", m.Name, m.Result.Throughput(),
			ms(m.Result.Percentile(0.5)), ms(m.Result.Percentile(0.99)), ms(m.Result.Percentile(0.999)),
			float64(m.CPUPerRequest())/1e3, mib(m.MaxRSS), m.GCCycles, gcPer)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// String summarises the stalls for the report.
func (s Stalls) String() string {
	if s.Wakes == 0 {
		return "not measured"
	}
	return fmt.Sprintf("%d of %d wake-ups of the load client from a 1 ms sleep were more than %s late (%.1f%% of the time), the latest by %s",
		s.Count, s.Wakes, stallLimit, 100*float64(s.Total)/float64(time.Duration(s.Wakes)*time.Millisecond+s.Total), s.Longest.Round(time.Millisecond))
}

// envoyCPURounds is a's Envoy CPU per request over b's, per round (nil when not measured).
func envoyCPURounds(a, b *Measured) []float64 {
	if len(a.RoundEnvoyCPU) != len(a.Rounds) || len(b.RoundEnvoyCPU) != len(b.Rounds) {
		return nil
	}
	var out []float64
	for i := range min(len(a.Rounds), len(b.Rounds)) {
		ra, rb := a.Rounds[i].Requests, b.Rounds[i].Requests
		if ra == 0 || rb == 0 || b.RoundEnvoyCPU[i] == 0 {
			continue
		}
		out = append(out, (float64(a.RoundEnvoyCPU[i])/float64(ra))/(float64(b.RoundEnvoyCPU[i])/float64(rb)))
	}
	return out
}
