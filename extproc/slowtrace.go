package extproc

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/trace"
	"sync"
	"time"

	"github.com/rkms/rkms/extproc/limits"
)

// SlowTraceOptions turn on the capture of a Go execution trace (runtime/trace's flight
// recorder) when an ext_proc stream takes longer than Threshold: the trace of the last few
// seconds, written to a file in Dir, for `go tool trace`. Off when nil (Options.SlowTrace).
//
// What a trace holds: the runtime's events (goroutines scheduled, blocked and unblocked, GC
// phases and assists, system calls, heap size) with stack traces (function names, files and
// lines), and rkms's own annotations: one task per stream ("rkms.extproc.stream"), one region
// per message handled ("rkms.extproc.message") and, in the stream that crossed the threshold,
// one log message ("rkms.slow_stream") with its duration. No request data, header, field value,
// key id or key material is ever written to a trace: the runtime does not record memory or
// arguments, and rkms's annotations carry only constant names and a duration.
//
// Captures are bounded: at most one per MinInterval, and none once Dir holds MaxFiles trace
// files of rkms (rkms-slow-*.trace); an operator removes files to allow more. Each file is at
// most about [SlowTraceWindowBytes]. Files are created with mode 0600.
type SlowTraceOptions struct {
	Threshold   time.Duration // a stream longer than this is traced; > 0
	Dir         string        // existing directory for the trace files
	MaxFiles    int           // 1..SlowTraceMaxFilesLimit; 0 means DefaultSlowTraceMaxFiles
	MinInterval time.Duration // between two captures; 0 means DefaultSlowTraceMinInterval
}

// Limits and defaults of [SlowTraceOptions].
const (
	DefaultSlowTraceMaxFiles    = limits.DefaultSlowTraceMaxFiles
	SlowTraceMaxFilesLimit      = limits.SlowTraceMaxFilesLimit
	DefaultSlowTraceMinInterval = limits.DefaultSlowTraceMinInterval
	// SlowTraceWindowBytes bounds the flight recorder's window (and so one file, roughly).
	SlowTraceWindowBytes = 32 << 20
	// slowTracePrefix and slowTraceSuffix name rkms's trace files in Dir.
	slowTracePrefix, slowTraceSuffix = "rkms-slow-", ".trace"
)

// Names of rkms's trace annotations (see [SlowTraceOptions]).
const (
	TraceTaskStream = "rkms.extproc.stream"
	TraceRegionMsg  = "rkms.extproc.message"
	TraceLogSlow    = "rkms.slow_stream"
)

// CheckSlowTrace reports what is wrong with o (nil: off), by package limits' rule, which the
// config loader applies too.
func CheckSlowTrace(o *SlowTraceOptions) error {
	if o == nil {
		return nil
	}
	return limits.CheckSlowTrace(o.Threshold, o.Dir, o.MaxFiles, o.MinInterval)
}

// slowTracer captures the flight recorder's window when a stream was slow.
type slowTracer struct {
	opts SlowTraceOptions
	fr   *trace.FlightRecorder
	log  *slog.Logger
	now  func() time.Time

	mu      sync.Mutex
	last    time.Time // last capture started
	writing bool      // a capture is being written
	full    bool      // Dir held MaxFiles files at the last attempt (logged once)
	wg      sync.WaitGroup
}

// newSlowTracer starts the flight recorder. Its window covers at least 4 thresholds (1 s to
// 10 s), so that a slow stream's whole life is in the file, within SlowTraceWindowBytes.
func newSlowTracer(o SlowTraceOptions, log *slog.Logger) (*slowTracer, error) {
	orDefault(&o.MaxFiles, DefaultSlowTraceMaxFiles)
	orDefault(&o.MinInterval, DefaultSlowTraceMinInterval)
	age := min(max(4*o.Threshold, time.Second), 10*time.Second)
	fr := trace.NewFlightRecorder(trace.FlightRecorderConfig{MinAge: age, MaxBytes: SlowTraceWindowBytes})
	if err := fr.Start(); err != nil {
		return nil, fmt.Errorf("slow trace: start the flight recorder: %w", err)
	}
	return &slowTracer{opts: o, fr: fr, log: log, now: time.Now}, nil
}

// stream starts a stream's trace task (nil tracer: ctx unchanged, no-op end).
func (t *slowTracer) stream(ctx context.Context) (context.Context, func()) {
	if t == nil {
		return ctx, func() {}
	}
	ctx, task := trace.NewTask(ctx, TraceTaskStream)
	return ctx, task.End
}

// message marks the handling of one message (nil tracer: no-op).
func (t *slowTracer) message(ctx context.Context) func() {
	if t == nil {
		return func() {}
	}
	return trace.StartRegion(ctx, TraceRegionMsg).End
}

// ended is told each stream's duration; over the threshold it logs the stream in the trace and
// captures the window, unless a capture is under way, the last one was less than MinInterval
// ago, or Dir is full. log gives the stream's logger; it is called only for a capture (building
// it costs every stream otherwise), on the stream's goroutine.
func (t *slowTracer) ended(ctx context.Context, d time.Duration, log func() *slog.Logger) {
	if t == nil || d <= t.opts.Threshold {
		return
	}
	trace.Log(ctx, TraceLogSlow, d.String())
	now := t.now()
	t.mu.Lock()
	if t.writing || (!t.last.IsZero() && now.Sub(t.last) < t.opts.MinInterval) {
		t.mu.Unlock()
		return
	}
	t.writing, t.last = true, now
	t.wg.Add(1)
	t.mu.Unlock()
	go t.capture(now, d, log())
}

// capture writes the flight recorder's window to a new file in Dir, off the stream's goroutine.
func (t *slowTracer) capture(now time.Time, d time.Duration, log *slog.Logger) {
	defer t.wg.Done()
	defer func() { t.mu.Lock(); t.writing = false; t.mu.Unlock() }()
	existing, err := filepath.Glob(filepath.Join(t.opts.Dir, slowTracePrefix+"*"+slowTraceSuffix))
	if err != nil || len(existing) >= t.opts.MaxFiles {
		t.mu.Lock()
		first := !t.full
		t.full = true
		t.mu.Unlock()
		if first {
			t.log.Warn("slow trace: not captured, the directory holds max_files traces", "dir", t.opts.Dir, "max_files", t.opts.MaxFiles)
		}
		return
	}
	t.mu.Lock()
	t.full = false
	t.mu.Unlock()
	var buf bytes.Buffer
	if _, err := t.fr.WriteTo(&buf); err != nil {
		t.log.Warn("slow trace: snapshot failed", "error", err)
		return
	}
	name := filepath.Join(t.opts.Dir, fmt.Sprintf("%s%s-%09d%s", slowTracePrefix, now.UTC().Format("20060102T150405"), now.Nanosecond(), slowTraceSuffix))
	if err := writeNew(name, buf.Bytes()); err != nil {
		t.log.Warn("slow trace: write failed", "error", err)
		return
	}
	log.Info("slow ext_proc stream traced", "duration", d.String(), "threshold", t.opts.Threshold.String(), "file", name)
}

// writeNew writes b to a file that must not exist yet, mode 0600.
func writeNew(name string, b []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(name)
		return err
	}
	return f.Close()
}

// close waits for a capture under way and stops the flight recorder.
func (t *slowTracer) close() {
	if t == nil {
		return
	}
	t.wg.Wait()
	t.fr.Stop()
}

// Close stops what the server runs beside its streams (the slow-stream flight recorder of
// Options.SlowTrace), after any capture under way is written. Streams still in flight are
// served on; call it once the gRPC server has stopped.
func (s *Server) Close() error {
	s.slow.close()
	return nil
}
