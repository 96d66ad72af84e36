package load

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rkms/rkms/extproc"
)

// Flags configure a run. Every loop is bounded both in time and in count.
type Flags struct {
	Duration    time.Duration // measured time per configuration (split over Rounds)
	Rounds      int           // alternations of the compared configurations
	Concurrency int           // streams in flight against the ext_proc servers (direct mode)
	MaxWorkers  int           // clients for Envoy's maximum throughput, and in-flight cap at the fixed rate
	Keys        int           // tenants whose keys are created and cached before the run
	BodySize    int           // request body bytes
	MaxRequests int64         // cap on requests per measured run
	Envoy       string        // envoy binary ("" : RKMS_ENVOY, .tools/venv/bin/envoy, PATH)
	SkipEnvoy   bool          // only the direct ext_proc comparison
	Only        string        // comma-separated sections to run (Sections); "": all
	KeepStore   bool          // keep the in-memory store in the rkms process after warming
	MemLimit    string        // GOMEMLIMIT of the rkms process ("": none)
	GOGC        string        // GOGC of the rkms process ("": the environment's)
	CPUProfile  string        // write the rkms server CPU profile (after warming) to this file
	NoopProfile string        // write the no-op server CPU profile to this file
	MemProfile  string        // write the rkms server heap profile (at the end) to this file
	Records     int           // stored records that the decrypt-only GET reads (one tenant each)
	// SlowTrace turns on rkms's slow-stream trace (extproc.slow_trace) in the rkms child,
	// writing to this directory: streams over SlowThreshold, at most SlowTraceFiles files.
	SlowTrace      string
	SlowThreshold  time.Duration
	SlowTraceFiles int
	Role           string // internal: the child process role
}

// Sections of a run, for -only.
const (
	SectionDirect = "direct" // (1) the ext_proc servers driven directly
	SectionPost   = "post"   // (2) the encrypt-only POST through Envoy
	SectionGet    = "get"    // (2) the decrypt-only GET through Envoy
	SectionHealth = "health" // (3) the unprotected route through Envoy
)

// Sections lists every section in run order.
var Sections = []string{SectionDirect, SectionPost, SectionGet, SectionHealth}

// runs reports whether section is to be run.
func (f *Flags) runs(section string) bool {
	if f.Only == "" {
		return true
	}
	return slices.Contains(strings.Split(f.Only, ","), section)
}

// slowTrace is the rkms child's slow-stream trace option (nil: off).
func slowTrace(f *Flags) *extproc.SlowTraceOptions {
	if f.SlowTrace == "" {
		return nil
	}
	return &extproc.SlowTraceOptions{Threshold: f.SlowThreshold, Dir: f.SlowTrace, MaxFiles: f.SlowTraceFiles, MinInterval: slowTraceInterval}
}

// slowTraceInterval spaces the rig's captures: a few per run, each of a different moment.
const slowTraceInterval = 2 * time.Second

func parseFlags(args []string, stderr io.Writer) (*Flags, error) {
	f := &Flags{}
	fs := flag.NewFlagSet("rkms-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&f.Duration, "duration", 10*time.Second, "measured time per configuration")
	fs.IntVar(&f.Rounds, "rounds", 5, "alternations of the compared configurations (each gets duration/rounds per round)")
	fs.IntVar(&f.Concurrency, "concurrency", 16, "ext_proc streams in flight in the direct comparison")
	fs.IntVar(&f.MaxWorkers, "max-workers", 32, "HTTP clients for Envoy's maximum throughput and in-flight cap at the fixed rate")
	fs.IntVar(&f.Keys, "keys", 100000, "tenants whose keys are created and cached before the run")
	fs.IntVar(&f.BodySize, "body", 1024, "request body size in bytes (3 tagged fields)")
	fs.Int64Var(&f.MaxRequests, "max-requests", 2000000, "cap on requests per measured run")
	fs.StringVar(&f.Envoy, "envoy", "", "envoy binary (default: $RKMS_ENVOY, .tools/venv/bin/envoy, PATH)")
	fs.BoolVar(&f.KeepStore, "keep-store", false, "keep the in-memory key store in the rkms process after warming (by default it is released: it stands in for DynamoDB, outside rkms)")
	fs.StringVar(&f.MemLimit, "rkms-gomemlimit", "", "GOMEMLIMIT for the rkms process only, e.g. 120MiB (default: none)")
	fs.StringVar(&f.GOGC, "rkms-gogc", "", "GOGC for the rkms process only, e.g. 200 or off (default: the environment's)")
	fs.BoolVar(&f.SkipEnvoy, "skip-envoy", false, "run only the direct ext_proc comparison")
	fs.StringVar(&f.Only, "only", "", "run only these sections, comma-separated: direct, post, get, health (default: all; targets of the others are not reported)")
	fs.StringVar(&f.CPUProfile, "cpuprofile", "", "write the CPU profile of the rkms server process (from the end of warming) to this file")
	fs.StringVar(&f.NoopProfile, "noop-cpuprofile", "", "write the CPU profile of the no-op server process to this file (compare with -cpuprofile: go tool pprof -diff_base)")
	fs.StringVar(&f.MemProfile, "memprofile", "", "write the heap profile of the rkms server process (at the end of the run) to this file")
	fs.IntVar(&f.Records, "records", 10000, "records stored before the run for the decrypt-only GET (each sealed with its own tenant's key)")
	fs.StringVar(&f.SlowTrace, "slow-trace", "", "directory: capture Go execution traces of rkms streams slower than -slow-threshold (extproc.slow_trace; one per 2 s at most)")
	fs.DurationVar(&f.SlowThreshold, "slow-threshold", 50*time.Millisecond, "with -slow-trace: the stream duration that triggers a capture")
	fs.IntVar(&f.SlowTraceFiles, "slow-trace-files", 10, "with -slow-trace: at most this many trace files per phase (each phase's are moved to DIR/PHASE/)")
	fs.StringVar(&f.Role, "role", "", "internal: run as a child process (rkms, noop, app)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	var errs []error
	if f.Duration <= 0 || f.Duration > time.Hour {
		errs = append(errs, errors.New("-duration must be in (0, 1h]"))
	}
	if f.Rounds < 1 || f.Concurrency < 1 || f.MaxWorkers < 1 || f.MaxRequests < 1 {
		errs = append(errs, errors.New("-rounds, -concurrency, -max-workers and -max-requests must be at least 1"))
	}
	if f.Keys < 1 || f.Keys > 10000000 {
		errs = append(errs, errors.New("-keys must be in [1, 10000000]"))
	}
	if _, err := Body(f.BodySize); err != nil || f.BodySize > 512<<10 {
		errs = append(errs, fmt.Errorf("-body must be in [256, 524288]"))
	}
	if f.Records < 1 || f.Records > 100000 {
		errs = append(errs, errors.New("-records must be in [1, 100000]"))
	}
	f.Records = min(f.Records, max(f.Keys, 1)) // one tenant per record
	if f.Only != "" {
		for _, sec := range strings.Split(f.Only, ",") {
			if !slices.Contains(Sections, sec) {
				errs = append(errs, fmt.Errorf("-only: unknown section %q (want some of %s)", sec, strings.Join(Sections, ", ")))
			}
		}
	}
	if f.SlowTrace != "" {
		if err := extproc.CheckSlowTrace(slowTrace(f)); err != nil {
			errs = append(errs, fmt.Errorf("-slow-trace: %w", err))
		}
	}
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	return f, errors.Join(errs...)
}

// Main runs rkms-load with args (without the program name), writing the report to stdout. app
// makes the application that the app child serves behind Envoy, holding at most maxRecords
// records per collection (cmd/rkms-load passes the example app's recorder.NewBounded): the rig
// takes it as a parameter so that it imports nothing from examples/.
func Main(ctx context.Context, args []string, app func(maxRecords int) http.Handler, stdin io.Reader, stdout, stderr io.Writer) error {
	f, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if f.Role != "" {
		return serveChild(ctx, f.Role, f, app, stdin, stdout)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own binary: %w", err)
	}
	body, _ := Body(f.BodySize)
	rep := &Report{Flags: *f}
	rep.machine()
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "rkms-load: "+format+"\n", a...) }

	logf("starting the no-op server and rkms (warming %d keys)", f.Keys)
	noop, err := startChild(exe, RoleNoop, f, stderr)
	if err != nil {
		return err
	}
	defer noop.stop()
	t0 := time.Now()
	rkms, err := startChild(exe, RoleRKMS, f, stderr)
	if err != nil {
		return err
	}
	defer rkms.stop()
	rep.WarmTime = time.Since(t0)
	if rep.Idle, err = rkms.stats(); err != nil {
		return err
	}

	// rkms's resident memory, sampled while the load runs, and the machine's stalls.
	sampleCtx, stopSampling := context.WithCancel(ctx)
	stalls := startStallMeter(sampleCtx)
	sampled := make(chan int64, 1)
	go func() { sampled <- sampleRSS(sampleCtx, rkms) }()
	defer stopSampling()

	if f.runs(SectionDirect) {
		if err := runDirect(ctx, f, body, noop, rkms, rep, logf); err != nil {
			return err
		}
	}
	if !f.SkipEnvoy && (f.runs(SectionPost) || f.runs(SectionGet) || f.runs(SectionHealth)) {
		if err := runEnvoy(ctx, exe, f, body, noop, rkms, rep, logf); err != nil {
			return err
		}
	}
	stopSampling()
	rep.LoadRSS = <-sampled
	<-stalls.done
	rep.Stalls = stalls.result()
	if rep.Final, err = rkms.stats(); err != nil {
		return err
	}
	rep.LoadEnd = loadAvg()
	rep.Print(stdout)
	return nil
}

// runDirect is run (1): the ext_proc servers over loopback gRPC, at fixed concurrency and (1b)
// at one offered rate.
func runDirect(ctx context.Context, f *Flags, body []byte, noop, rkms *child, rep *Report, logf func(string, ...any)) error {
	var direct [2]target
	for i, c := range []*child{noop, rkms} {
		client, closeFn, err := dialExtProc(c.addr)
		if err != nil {
			return err
		}
		defer closeFn()
		direct[i] = target{name: c.role, child: c, do: streamer(client, NewExchange(body, f.Keys, c == rkms))}
	}
	logf("direct ext_proc: %d streams in flight, %s per server", f.Concurrency, f.Duration)
	var err error
	rep.Direct, err = alternate(ctx, direct[:], f, func(ctx context.Context, d time.Duration, do func(context.Context, int) error) *Result {
		return closedLoop(ctx, f.Concurrency, d, f.MaxRequests, do)
	})
	if err == nil {
		err = fileTraces(f, "direct-max")
	}
	if err != nil {
		return err
	}
	// (1b) the same at one offered rate, half the no-op's throughput at fixed concurrency: at
	// fixed concurrency the faster server also batches more answers per write, so its CPU per
	// request is lower for a reason that is not the work per request.
	rep.DirectRate = rep.Direct[0].Result.Throughput() / 2
	logf("direct ext_proc: %.0f streams/s offered, %s per server", rep.DirectRate, f.Duration)
	rep.DirectFixed, err = alternate(ctx, direct[:], f, func(ctx context.Context, d time.Duration, do func(context.Context, int) error) *Result {
		return openLoop(ctx, rep.DirectRate, d, f.Concurrency*4, do)
	})
	if err != nil {
		return err
	}
	return fileTraces(f, "direct-rate")
}

// target is one configuration under comparison.
type target struct {
	name  string
	child *child // the process whose CPU and memory are attributed to the configuration
	do    func(ctx context.Context, n int) error
	envoy int // the pid of the configuration's Envoy (0: none), whose CPU is measured too
}

// Measured is a configuration's merged result and its server process's usage over the runs.
type Measured struct {
	Name     string
	Result   *Result
	Rounds   []*Result       // each round's result, paired by index with the other configurations'
	CPU      time.Duration   // server process CPU during the measured runs
	RoundCPU []time.Duration // CPU per round, paired with Rounds
	MaxRSS   int64           // largest VmRSS sampled after a run
	Streams  uint64          // ext_proc streams the server received during the runs (ext_proc servers)
	Messages uint64          // ext_proc messages the server received during the runs
	GCCycles uint64          // garbage collections of the server during the runs
	GCCPU    time.Duration   // the runtime's estimate of its collector's CPU (Stats.GCCPU)
	KMS      uint64          // KMS calls during the runs (rkms only)
	Store    uint64          // store calls during the runs (rkms only)
	// EnvoyCPU is the configuration's Envoy process CPU during the runs (0 when not measured);
	// RoundEnvoyCPU per round, paired with Rounds.
	EnvoyCPU      time.Duration
	RoundEnvoyCPU []time.Duration
}

// EnvoyCPUPerRequest is Envoy's CPU time per completed request (0 when not measured).
func (m *Measured) EnvoyCPUPerRequest() time.Duration {
	if m.Result.Requests == 0 {
		return 0
	}
	return m.EnvoyCPU / time.Duration(m.Result.Requests)
}

// CPUPerRequest is server CPU time per completed request.
func (m *Measured) CPUPerRequest() time.Duration {
	if m.Result.Requests == 0 {
		return 0
	}
	return m.CPU / time.Duration(m.Result.Requests)
}

// alternate runs every target for f.Duration/f.Rounds, f.Rounds times in turn, and merges.
func alternate(ctx context.Context, ts []target, f *Flags, run func(context.Context, time.Duration, func(context.Context, int) error) *Result) ([]*Measured, error) {
	out := make([]*Measured, len(ts))
	for i, t := range ts {
		out[i] = &Measured{Name: t.name, Result: &Result{}}
	}
	d := f.Duration / time.Duration(f.Rounds)
	for range f.Rounds {
		for i, t := range ts {
			s0, err := t.child.stats()
			if err != nil {
				return nil, err
			}
			e0, err := procCPU(t.envoy)
			if err != nil {
				return nil, err
			}
			r := run(ctx, d, t.do)
			e1, err := procCPU(t.envoy)
			if err != nil {
				return nil, err
			}
			s1, err := t.child.stats()
			if err != nil {
				return nil, err
			}
			if r.Errors > 0 {
				return nil, fmt.Errorf("%s: %d errors, first: %w", t.name, r.Errors, r.FirstErr)
			}
			m := out[i]
			m.Rounds = append(m.Rounds, r)
			m.Result.merge(r)
			m.CPU += s1.CPU - s0.CPU
			m.RoundCPU = append(m.RoundCPU, s1.CPU-s0.CPU)
			if t.envoy != 0 {
				m.EnvoyCPU += e1 - e0
				m.RoundEnvoyCPU = append(m.RoundEnvoyCPU, e1-e0)
			}
			m.MaxRSS = max(m.MaxRSS, s1.RSS)
			m.GCCycles += s1.GCCycles - s0.GCCycles
			m.GCCPU += s1.GCCPU - s0.GCCPU
			m.KMS += s1.KMSCalls - s0.KMSCalls
			m.Store += s1.StoreCalls - s0.StoreCalls
			m.Streams += s1.Streams - s0.Streams
			m.Messages += s1.Messages - s0.Messages
		}
	}
	return out, nil
}

// procCPU is the user + system CPU time of process pid and all its threads, from
// /proc/PID/stat (clock ticks, 10 ms at the usual USER_HZ of 100: a round of seconds at full
// load reads to about 1 %). 0 for pid 0.
func procCPU(pid int) (time.Duration, error) {
	if pid == 0 {
		return 0, nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("envoy cpu: %w", err)
	}
	// The command name (field 2) is in parentheses and may hold spaces: count from after it.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("envoy cpu: unexpected /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("envoy cpu: unexpected /proc/%d/stat", pid)
	}
	// Fields 14 (utime) and 15 (stime) of the line, 12 and 13 after the name.
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("envoy cpu: %w", err)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on every Linux architecture
// Go supports.
const clockTicks = 100

func dialExtProc(addr string) (extprocv3.ExternalProcessorClient, func(), error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return extprocv3.NewExternalProcessorClient(conn), func() { conn.Close() }, nil
}

func port(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

// sampleRSS returns the largest VmRSS of c seen every 200 ms until ctx ends.
func sampleRSS(ctx context.Context, c *child) int64 {
	var peak int64
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return peak
		case <-t.C:
			if s, err := c.stats(); err == nil {
				peak = max(peak, s.RSS)
			}
		}
	}
}

// fileTraces moves the slow-stream traces that rkms wrote during the phase that just ended
// (every rkms-slow-*.trace in f.SlowTrace) into the subdirectory named phase: traces are then
// grouped by phase, and each phase has the whole -slow-trace-files budget (rkms counts only
// the files directly in the directory). A capture still being written when the phase ends lands
// in the next phase's group.
func fileTraces(f *Flags, phase string) error {
	if f.SlowTrace == "" {
		return nil
	}
	files, err := filepath.Glob(filepath.Join(f.SlowTrace, "rkms-slow-*.trace"))
	if err != nil || len(files) == 0 {
		return err
	}
	dst := filepath.Join(f.SlowTrace, phase)
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return fmt.Errorf("slow traces: %w", err)
	}
	for _, src := range files {
		if err := os.Rename(src, filepath.Join(dst, filepath.Base(src))); err != nil {
			return fmt.Errorf("slow traces: %w", err)
		}
	}
	return nil
}
