package load

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
)

// Targets, as ratios within one run. Issue 18: through Envoy at half the 4-phase no-op's
// maximum, rkms's p50 and p99 at or below the no-op's; at maximum throughput rkms at least 0.9x
// the no-op's; directly, CPU per stream at most 1.15x the no-op's at fixed concurrency; the
// unprotected route 0 ext_proc messages and Envoy's throughput unchanged within noise. Issue 5:
// memory and the steady state.
const (
	TargetCPURatio        = 1.15 // rkms server CPU per stream / no-op server's, fixed concurrency
	TargetEnvoyThroughput = 0.9  // rkms via Envoy / 4-phase no-op via Envoy, each at its maximum (closed loop)
	TargetEnvoyLatency    = 1.0  // rkms p50 and p99 / the 4-phase no-op's, same offered rate
	// MinNoiseBand is the smallest noise band of the unprotected route's throughput verdict;
	// the band used is the larger of it and the no-ext_proc configuration's own round-to-round
	// spread (see [noiseBand]).
	MinNoiseBand  = 0.03
	TargetRSS     = 150_000_000 // bytes (150 MB), with 100,000 cached keys
	TargetRSSKeys = 100000
)

// Report is everything one run measured.
type Report struct {
	Flags     Flags
	CPUModel  string
	NumCPU    int
	LoadStart string // /proc/loadavg at the start
	LoadEnd   string // and at the end
	Stalls    Stalls // the load client's wake-ups from a 1 ms sleep, over the measured runs
	Go        string
	WarmTime  time.Duration
	Idle      Stats       // rkms after warming, before load
	Final     Stats       // rkms at the end
	LoadRSS   int64       // largest VmRSS of rkms sampled (every 200 ms) while the load ran
	Direct    []*Measured // fixed concurrency
	// DirectFixed is the direct comparison at one offered rate, DirectRate streams/s.
	DirectFixed []*Measured
	DirectRate  float64
	// Routes are the route kinds through Envoy; Health the unprotected route through Envoy
	// without ext_proc and the rkms configuration.
	Routes []*RouteRun
	Health []*Measured
}

func (r *Report) machine() {
	r.NumCPU, r.Go = runtime.NumCPU(), runtime.Version()
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				r.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	r.LoadStart = loadAvg()
}

// loadAvg is /proc/loadavg ("" where there is none).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func ms(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d)/float64(time.Millisecond)) }

func verdict(ok bool) string {
	if ok {
		return "MET"
	}
	return "MISSED"
}
