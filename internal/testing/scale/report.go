package scale

import (
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/rkms/rkms/internal/plan"
)

// Sample is the counters at one moment of the measured window.
type Sample struct {
	At       time.Duration // since the window started
	Replicas []Calls       // cumulative, since the window started
	Emulator uint64        // Decrypt lines logged by the emulators since the window started
}

// Result is one run's outcome.
type Result struct {
	Options   Options
	Rate      float64 // requests/s sent in the measured window
	Predicted plan.Result
	Samples   []Sample // the last is the whole window
	Failed    uint64
	Late      uint64
	LoadStart string // /proc/loadavg before and after
	LoadEnd   string
}

// Final is the whole window's counters per replica.
func (r Result) Final() []Calls { return r.Samples[len(r.Samples)-1].Replicas }

// Fleet sums the whole window's counters over the replicas.
func (r Result) Fleet() Calls {
	var c Calls
	for _, x := range r.Final() {
		c.KMSDecrypt += x.KMSDecrypt
		c.KMSOther += x.KMSOther
		c.StoreGet += x.StoreGet
	}
	return c
}

// Ratios are the fleet's measured rates over the planner's.
func (r Result) Ratios() (kms, store float64) {
	secs := r.Options.Measure.Seconds()
	f := r.Fleet()
	return f.KMSDecrypt / secs / r.Predicted.KMS(), f.StoreGet / secs / r.Predicted.Store()
}

// Within reports whether both ratios are within tol of 1.
func (r Result) Within(tol float64) bool {
	k, s := r.Ratios()
	return math.Abs(k-1) <= tol && math.Abs(s-1) <= tol
}

// LoadAvg returns /proc/loadavg's first three fields ("" when unknown).
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// WriteReport prints r as Markdown.
func WriteReport(w io.Writer, r Result) error {
	o := r.Options
	p := r.Predicted
	secs := o.Measure.Seconds()
	var b strings.Builder
	fmt.Fprintf(&b, "## Scale simulation: %s mode, %d tenants (%s), %d replicas (%s), cache.ttl %s\n\n", o.Mode, o.Tenants, o.Dist, o.Replicas, o.Spread, o.TTL)
	fmt.Fprintf(&b, "Real `rkms serve` processes, 3 local-kms regions, dynalite. Traffic: %.1f requests/s sent (target %.0f), %d failed, %d dropped as late; warm-up %s not counted, measured %s. Load average (1, 5, 15 min) %s before, %s after, on %d CPUs.\n\n",
		r.Rate, o.Rate, r.Failed, r.Late, o.Warm, o.Measure, r.LoadStart, r.LoadEnd, numCPU())
	b.WriteString("| replica | KMS Decrypt/s measured | planner | ratio | store reads/s measured | planner | ratio |\n|---|---|---|---|---|---|---|\n")
	for i, c := range r.Final() {
		fmt.Fprintf(&b, "| %d | %.2f | %.2f | %.3f | %.2f | %.2f | %.3f |\n", i+1, c.KMSDecrypt/secs, p.KMSPerReplica, c.KMSDecrypt/secs/p.KMSPerReplica,
			c.StoreGet/secs, p.StorePerReplica, c.StoreGet/secs/p.StorePerReplica)
	}
	f := r.Fleet()
	kr, sr := r.Ratios()
	fmt.Fprintf(&b, "| fleet | %.2f | %.2f | %.3f | %.2f | %.2f | %.3f |\n\n", f.KMSDecrypt/secs, p.KMS(), kr, f.StoreGet/secs, p.Store(), sr)
	last := r.Samples[len(r.Samples)-1]
	fmt.Fprintf(&b, "Decrypt calls in the window: %d logged by the emulators (\"Decryption called\"), %.0f counted by the replicas. Other KMS calls by the replicas: %.0f. Within 10 %% of the planner: %v.\n\n",
		last.Emulator, f.KMSDecrypt, f.KMSOther, r.Within(0.10))
	b.WriteString("Over time (cumulative KMS Decrypt calls per replica, emulators' total):\n\n| t |")
	for i := range r.Final() {
		fmt.Fprintf(&b, " replica %d |", i+1)
	}
	b.WriteString(" emulators | planner (fleet) |\n|---|")
	for range r.Final() {
		b.WriteString("---|")
	}
	b.WriteString("---|---|\n")
	for _, s := range r.Samples {
		fmt.Fprintf(&b, "| %s |", s.At.Round(time.Second))
		for _, c := range s.Replicas {
			fmt.Fprintf(&b, " %.0f |", c.KMSDecrypt)
		}
		fmt.Fprintf(&b, " %d | %.0f |\n", s.Emulator, p.KMS()*s.At.Seconds())
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func numCPU() int { return runtime.NumCPU() }
