package load

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
)

// Stats is what a child process reports about itself.
type Stats struct {
	CPU      time.Duration `json:"cpu_ns"`          // user + system time of the whole process (getrusage)
	RSS      int64         `json:"rss_bytes"`       // VmRSS now
	HWM      int64         `json:"hwm_bytes"`       // VmHWM: peak resident memory
	HeapLive int64         `json:"heap_live_bytes"` // Go heap marked live by the last GC
	GCCycles uint64        `json:"gc_cycles"`       // garbage collections completed
	// GCCPU is the runtime's estimate of the CPU time its collector used (runtime/metrics
	// /cpu/classes/gc/total: phases' wall time times GOMAXPROCS, idle marking included), an
	// overestimate that compares processes with each other, not with CPU.
	GCCPU        time.Duration `json:"gc_cpu_ns"`
	KMSCalls     uint64        `json:"kms_calls"`
	StoreCalls   uint64        `json:"store_calls"`
	CacheEntries int           `json:"cache_entries"`
	// Streams and Messages count the ext_proc streams opened to the server and the messages it
	// received on them (ext_proc children; a gRPC interceptor, the same for both servers).
	Streams  uint64 `json:"streams"`
	Messages uint64 `json:"messages"`
}

// msgCounter counts ext_proc streams and received messages through a stream interceptor.
type msgCounter struct{ streams, msgs atomic.Uint64 }

func (c *msgCounter) intercept(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	c.streams.Add(1)
	return h(srv, countingStream{ss, c})
}

func (c *msgCounter) fill(s *Stats) { s.Streams, s.Messages = c.streams.Load(), c.msgs.Load() }

type countingStream struct {
	grpc.ServerStream
	c *msgCounter
}

func (s countingStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if err == nil {
		s.c.msgs.Add(1)
	}
	return err
}

// Roles of the child processes; the parent re-executes its own binary with -role.
const (
	RoleRKMS = "rkms" // the rkms ext_proc server with a warm keyring
	RoleNoop = "noop" // the no-op ext_proc server
	RoleApp  = "app"  // the application behind Envoy (Main's app: the example recorder)
)

// profiles names the profile files of the rkms child ("": none).
type profiles struct{ cpu, mem string }

// serveChild runs one child role: it listens on a loopback port, writes "ready ADDR" on out,
// then answers each "stats" line of in with a JSON Stats line until in is closed.
func serveChild(ctx context.Context, role string, f *Flags, app func(maxRecords int) http.Handler, in io.Reader, out io.Writer) error {
	keys, keepStore, prof := f.Keys, f.KeepStore, profiles{f.CPUProfile, f.MemProfile}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer lis.Close()
	var counters func(*Stats)
	switch role {
	case RoleRKMS:
		dir, err := os.MkdirTemp("", "rkms-load-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		rig, err := NewRig(dir, slowTrace(f))
		if err != nil {
			return err
		}
		defer rig.Close()
		defer rig.Server.Close()
		if err := rig.Warm(ctx, keys); err != nil {
			return err
		}
		if !keepStore {
			rig.Store.Release()
		}
		debug.FreeOSMemory() // measure from a collected heap, with warm-up garbage returned to the OS
		if prof.mem != "" {
			defer writeHeapProfile(prof.mem)
		}
		stopProfile, err := startCPUProfile(prof.cpu)
		if err != nil {
			return err
		}
		defer stopProfile()
		var mc msgCounter
		g := grpc.NewServer(append(rig.Server.GRPCServerOptions(), grpc.StreamInterceptor(mc.intercept))...)
		rig.Server.Register(g)
		go func() { _ = g.Serve(lis) }()
		defer g.Stop()
		counters = func(s *Stats) {
			s.KMSCalls, s.StoreCalls = rig.Region.Calls(), rig.Store.Calls()
			s.CacheEntries = rig.Keyring.Stats().CacheEntries
			mc.fill(s)
		}
	case RoleNoop:
		stopProfile, err := startCPUProfile(prof.cpu)
		if err != nil {
			return err
		}
		defer stopProfile()
		var mc msgCounter
		g := grpc.NewServer(grpc.StreamInterceptor(mc.intercept))
		(&Noop{}).Register(g)
		go func() { _ = g.Serve(lis) }()
		defer g.Stop()
		counters = mc.fill
	case RoleApp:
		srv := &http.Server{Handler: app(2 * f.Records), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(lis) }()
		defer srv.Close()
	default:
		return fmt.Errorf("unknown role %q", role)
	}
	if _, err := fmt.Fprintf(out, "ready %s\n", lis.Addr()); err != nil {
		return err
	}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		if sc.Text() != "stats" {
			return fmt.Errorf("unknown command %q", sc.Text())
		}
		s, err := selfStats()
		if err != nil {
			return err
		}
		if counters != nil {
			counters(&s)
		}
		b, _ := json.Marshal(s)
		if _, err := fmt.Fprintf(out, "%s\n", b); err != nil {
			return err
		}
	}
	return sc.Err()
}

// selfStats reads this process's CPU time (getrusage, microsecond resolution, all threads) and
// resident memory (/proc/self/status).
func selfStats() (Stats, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return Stats{}, fmt.Errorf("getrusage: %w", err)
	}
	s := Stats{CPU: time.Duration(ru.Utime.Nano() + ru.Stime.Nano())}
	ms := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/cycles/total:gc-cycles"}, {Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(ms)
	if ms[0].Value.Kind() == metrics.KindUint64 {
		s.HeapLive = int64(ms[0].Value.Uint64())
	}
	if ms[1].Value.Kind() == metrics.KindUint64 {
		s.GCCycles = ms[1].Value.Uint64()
	}
	if ms[2].Value.Kind() == metrics.KindFloat64 {
		s.GCCPU = time.Duration(ms[2].Value.Float64() * float64(time.Second))
	}
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return Stats{}, fmt.Errorf("read memory status: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, val, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return Stats{}, fmt.Errorf("parse %s: %w", name, err)
		}
		if name == "VmRSS" {
			s.RSS = kb << 10
		} else {
			s.HWM = kb << 10
		}
	}
	return s, nil
}

// child is a running child process.
type child struct {
	mu   sync.Mutex // one stats exchange at a time
	role string
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	addr string
}

// startCPUProfile starts writing a CPU profile to path ("": none) and returns its stop function.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	pf, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(pf); err != nil {
		pf.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		pf.Close()
	}, nil
}

// childArgs are the flags of role's child process, from the parent's flags f.
func childArgs(role string, f *Flags) []string {
	args := []string{"-role", role}
	switch role {
	case RoleRKMS:
		args = append(args, "-keys", strconv.Itoa(f.Keys), "-keep-store="+strconv.FormatBool(f.KeepStore))
		if f.MemProfile != "" {
			args = append(args, "-memprofile", f.MemProfile)
		}
		if f.CPUProfile != "" {
			args = append(args, "-cpuprofile", f.CPUProfile)
		}
		if f.SlowTrace != "" {
			args = append(args, "-slow-trace", f.SlowTrace, "-slow-threshold", f.SlowThreshold.String(),
				"-slow-trace-files", strconv.Itoa(f.SlowTraceFiles))
		}
	case RoleNoop:
		if f.NoopProfile != "" {
			args = append(args, "-cpuprofile", f.NoopProfile)
		}
	case RoleApp:
		args = append(args, "-records", strconv.Itoa(f.Records))
	}
	return args
}

// startChild re-executes this binary in role (with [childArgs]) and waits for its "ready" line.
func startChild(exe, role string, f *Flags, stderr io.Writer) (*child, error) {
	cmd := exec.Command(exe, childArgs(role, f)...)
	cmd.Stderr = stderr
	if role == RoleRKMS && (f.MemLimit != "" || f.GOGC != "") {
		cmd.Env = os.Environ()
		if f.MemLimit != "" {
			cmd.Env = append(cmd.Env, "GOMEMLIMIT="+f.MemLimit)
		}
		if f.GOGC != "" {
			cmd.Env = append(cmd.Env, "GOGC="+f.GOGC)
		}
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", role, err)
	}
	c := &child{role: role, cmd: cmd, in: in, out: bufio.NewScanner(outPipe)}
	line, err := c.line()
	if err != nil {
		c.stop()
		return nil, fmt.Errorf("%s did not start: %w", role, err)
	}
	addr, ok := strings.CutPrefix(line, "ready ")
	if !ok {
		c.stop()
		return nil, fmt.Errorf("%s: unexpected first line %q", role, line)
	}
	c.addr = addr
	return c, nil
}

func (c *child) line() (string, error) {
	if !c.out.Scan() {
		if err := c.out.Err(); err != nil {
			return "", err
		}
		return "", io.ErrUnexpectedEOF
	}
	return c.out.Text(), nil
}

// stats asks the child for its Stats.
func (c *child) stats() (Stats, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := io.WriteString(c.in, "stats\n"); err != nil {
		return Stats{}, fmt.Errorf("%s stats: %w", c.role, err)
	}
	line, err := c.line()
	if err != nil {
		return Stats{}, fmt.Errorf("%s stats: %w", c.role, err)
	}
	var s Stats
	if err := json.Unmarshal([]byte(line), &s); err != nil {
		return Stats{}, fmt.Errorf("%s stats: %w", c.role, err)
	}
	return s, nil
}

// stop closes the child's stdin (it exits) and waits, killing it after 5 s.
func (c *child) stop() {
	c.in.Close()
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}

func writeHeapProfile(path string) {
	f, err := os.Create(path)
	if err != nil {
		return
	}
	defer f.Close()
	runtime.GC()
	_ = pprof.WriteHeapProfile(f)
}
