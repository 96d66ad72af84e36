package load

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/internal/testing/envoytest"
)

func TestBody(t *testing.T) {
	for _, size := range []int{256, 1024, 4096, 1 << 16} {
		b, err := Body(size)
		if err != nil {
			t.Fatalf("Body(%d): %v", size, err)
		}
		var doc struct {
			SSN     string
			Contact struct{ Email string }
			Cards   []struct{ Number string }
		}
		if len(b) != size || json.Unmarshal(b, &doc) != nil {
			t.Fatalf("Body(%d): %d bytes, JSON error %v", size, len(b), json.Unmarshal(b, &doc))
		}
		if doc.SSN == "" || doc.Contact.Email == "" || len(doc.Cards) != 1 || doc.Cards[0].Number == "" {
			t.Errorf("Body(%d) lacks a tagged field: %+v", size, doc)
		}
	}
	if _, err := Body(100); err == nil {
		t.Error("Body(100): no error for a size below the fixed part")
	}
}

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // substring of the error; "" for none
	}{
		{nil, ""},
		{[]string{"-duration", "2s", "-keys", "10", "-skip-envoy"}, ""},
		{[]string{"-duration", "0s"}, "-duration"},
		{[]string{"-keys", "0"}, "-keys"},
		{[]string{"-body", "10"}, "-body"},
		{[]string{"-concurrency", "0"}, "at least 1"},
		{[]string{"extra"}, "unexpected arguments"},
		{[]string{"-records", "0"}, "-records"},
		{[]string{"-slow-trace", "/nonexistent-rkms-dir"}, "-slow-trace: dir"},
		{[]string{"-slow-trace", os.TempDir(), "-slow-threshold", "0s"}, "-slow-trace: threshold"},
		{[]string{"-slow-trace", os.TempDir(), "-slow-trace-files", "5"}, ""},
	} {
		_, err := parseFlags(tc.args, io.Discard)
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("parseFlags(%q) = %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestLoops(t *testing.T) {
	errBoom := errors.New("boom")
	t.Run("closed loop stops at the request limit", func(t *testing.T) {
		var calls atomic.Int64
		r := closedLoop(context.Background(), 4, time.Minute, 100, func(context.Context, int) error {
			calls.Add(1)
			return nil
		})
		if r.Requests != 100 || calls.Load() != 100 || r.Errors != 0 {
			t.Errorf("requests %d, calls %d, errors %d; want 100, 100, 0", r.Requests, calls.Load(), r.Errors)
		}
	})
	t.Run("closed loop stops at the deadline and counts errors", func(t *testing.T) {
		start := time.Now()
		r := closedLoop(context.Background(), 2, 50*time.Millisecond, 1<<40, func(_ context.Context, n int) error {
			time.Sleep(time.Millisecond)
			if n%2 == 0 {
				return errBoom
			}
			return nil
		})
		if d := time.Since(start); d > 5*time.Second || r.Errors == 0 || r.Requests == 0 || !errors.Is(r.FirstErr, errBoom) {
			t.Errorf("took %s, %d requests, %d errors (%v)", d, r.Requests, r.Errors, r.FirstErr)
		}
	})
	t.Run("open loop offers rate x duration", func(t *testing.T) {
		r := openLoop(context.Background(), 1000, 100*time.Millisecond, 8, func(context.Context, int) error { return nil })
		if r.Requests != 100 || r.Percentile(0.5) <= 0 || r.Percentile(0.5) > r.Percentile(0.99) {
			t.Errorf("%d requests (want 100), p50 %s p99 %s", r.Requests, r.Percentile(0.5), r.Percentile(0.99))
		}
	})
}

// TestServers plays streams against the no-op server and rkms: rkms seals and opens the three
// fields, the no-op server changes nothing, and warm keys make no KMS or store call, even with
// the store released.
func TestServers(t *testing.T) {
	rig, err := NewRig(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rig.Close()
	const tenants = 20
	if err := rig.Warm(context.Background(), tenants); err != nil {
		t.Fatal(err)
	}
	rig.Store.Release()
	kms, st := rig.Region.Calls(), rig.Store.Calls()
	body, _ := Body(1024)
	for _, tc := range []struct {
		name   string
		reg    func(*grpc.Server)
		sealed bool
	}{
		{"noop", (&Noop{}).Register, false},
		{"rkms", rig.Server.Register, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := grpc.NewServer()
			tc.reg(g)
			lis := listen(t)
			go func() { _ = g.Serve(lis) }()
			defer g.Stop()
			client, closeFn, err := dialExtProc(lis.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer closeFn()
			x := NewExchange(body, tenants, tc.sealed)
			ctx := PolicyContext(context.Background())
			for n := range 2 * tenants {
				if err := x.Run(ctx, client, n); err != nil {
					t.Fatalf("stream %d: %v", n, err)
				}
			}
		})
	}
	if rig.Region.Calls() != kms || rig.Store.Calls() != st {
		t.Errorf("warm keys made %d KMS and %d store calls", rig.Region.Calls()-kms, rig.Store.Calls()-st)
	}
}

// TestEnvoyConfigs checks the three bootstraps the load runs with against the real Envoy: the
// rig's routes, the filters of each configuration, and the rkms configuration's per-route
// settings from extproc.RouteConfigFor.
func TestEnvoyConfigs(t *testing.T) {
	testenv.Integration(t)
	for _, tc := range []struct {
		name     string
		extproc  int
		perRoute bool
	}{
		{EnvoyNoFilter, 0, false},
		{EnvoyNoop, 50051, false},
		{EnvoyRKMS, 50051, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := envoyConfig(9901, 10000, 8000, tc.extproc, envoytest.JWKSFile(t), tc.perRoute)
			if err != nil {
				t.Fatal(err)
			}
			s := string(cfg)
			if got := strings.Contains(s, "envoy.filters.http.ext_proc"); got != (tc.extproc != 0) {
				t.Fatalf("ext_proc filter present = %v in\n%s", got, cfg)
			}
			if got := strings.Contains(s, "name: envoy.filters.http.rbac"); got != (tc.extproc != 0) {
				t.Fatalf("rbac filter (rkms's stamp check) present = %v in\n%s", got, cfg)
			}
			for _, p := range []string{"path: " + HealthPath, "prefix: " + WritePath, "prefix: " + ReadPath, "prefix: /\n"} {
				if !strings.Contains(s, p) {
					t.Errorf("route %q missing", p)
				}
			}
			// The policy routes (patients, write, read and read's response-only route) require
			// tokens; the rest check one if present, /healthz neither.
			if n := strings.Count(s, "requirement_name: tenant\n"); n != 4 {
				t.Errorf("%d routes require a token, want 4 (/patients, %s and %s twice)", n, WritePath, ReadPath)
			}
			// Per-route overrides only in the rkms configuration: the no-op gets the 4-phase default.
			for _, p := range []string{WritePolicy, ReadPolicy} {
				if got := strings.Contains(s, "value: "+p); got != tc.perRoute {
					t.Errorf("policy %s named on its route = %v, want %v", p, got, tc.perRoute)
				}
			}
			if got := strings.Contains(s, "processing_mode:\n") && strings.Count(s, "processing_mode:") > 1; got != tc.perRoute {
				t.Errorf("per-route processing_mode present = %v, want %v", got, tc.perRoute)
			}
			if out, err := testenv.Validate(t, s); err != nil {
				t.Fatalf("envoy --mode validate: %v\n%s", err, out)
			}
		})
	}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return lis
}

func TestPairedMedian(t *testing.T) {
	res := func(ms ...int) []*Result {
		var out []*Result
		for _, m := range ms {
			out = append(out, &Result{Requests: 1, Elapsed: time.Second, lat: []time.Duration{time.Duration(m) * time.Millisecond}})
		}
		return out
	}
	p99 := func(a, b *Result) float64 { return float64(a.Percentile(0.99) - b.Percentile(0.99)) }
	for _, tc := range []struct {
		name string
		a, b []*Result
		want time.Duration
	}{
		{"a stall in one round does not decide", res(10, 900, 12), res(9, 5, 11), time.Millisecond},
		{"no rounds", nil, nil, 0},
		{"unpaired rounds ignored", res(3, 100), res(1), 2 * time.Millisecond},
	} {
		if got := time.Duration(pairedMedian(tc.a, tc.b, p99)); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestJudged(t *testing.T) {
	j := judged{name: "x", rounds: []float64{0.8, 1.2, 0.95, 0.7, 1.1}, target: "<= 1.00x", ok: atMost(1)}
	var b strings.Builder
	j.print(&b)
	if m, ok := j.verdict(); m != 0.95 || !ok {
		t.Errorf("verdict %.2f %v, want the median 0.95 MET", m, ok)
	}
	for _, want := range []string{"0.80 MET", "1.20 MISSED", "median of rounds 0.950: MET"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("%q lacks %q", b.String(), want)
		}
	}
	if _, ok := (judged{ok: atLeast(0)}).verdict(); ok {
		t.Error("a target with no rounds is met")
	}
	rounds := func(rates ...int) *Measured {
		m := &Measured{}
		for _, r := range rates {
			m.Rounds = append(m.Rounds, &Result{Requests: r, Elapsed: time.Second})
		}
		return m
	}
	if got := noiseBand(rounds(100, 90, 110, 100, 105)); got < 0.0999 || got > 0.1001 {
		t.Errorf("noise band %.4f, want 0.10 (the largest deviation from the median)", got)
	}
}

// TestMsgCounter: the children's interceptor counts every stream and received message.
func TestMsgCounter(t *testing.T) {
	var mc msgCounter
	g := grpc.NewServer(grpc.StreamInterceptor(mc.intercept))
	(&Noop{}).Register(g)
	lis := listen(t)
	go func() { _ = g.Serve(lis) }()
	defer g.Stop()
	client, closeFn, err := dialExtProc(lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	body, _ := Body(1024)
	x := NewExchange(body, 3, false)
	for n := range 5 {
		if err := x.Run(PolicyContext(context.Background()), client, n); err != nil {
			t.Fatal(err)
		}
	}
	var s Stats
	mc.fill(&s)
	if s.Streams != 5 || s.Messages != 5*Messages {
		t.Errorf("counted %d streams and %d messages, want 5 and %d", s.Streams, s.Messages, 5*Messages)
	}
}

// TestPrepareRecords: the records the decrypt-only GET reads are sealed by rkms's encrypt-only
// policy and imported with their ids.
func TestPrepareRecords(t *testing.T) {
	rig, err := NewRig(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rig.Close()
	const n = 7
	if err := rig.Warm(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	rig.Server.Register(g)
	lis := listen(t)
	go func() { _ = g.Serve(lis) }()
	defer g.Stop()
	var imported []byte
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || r.URL.Path != ReadPath+"/_import" {
			http.Error(w, "unexpected "+r.URL.Path, http.StatusNotFound)
			return
		}
		b, _ := io.ReadAll(r.Body)
		imported = append(imported, b...)
	}))
	defer app.Close()
	body, _ := Body(1024)
	if err := prepareRecords(context.Background(), lis.Addr().String(), app.URL, body, n); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(imported)), "\n")
	if len(lines) != n {
		t.Fatalf("%d records imported, want %d", len(lines), n)
	}
	for i, l := range lines {
		var rec struct{ ID string }
		if err := json.Unmarshal([]byte(l), &rec); err != nil || rec.ID != strconv.Itoa(i) || ciphertexts([]byte(l)) != TaggedFields {
			t.Errorf("record %d: id %q, %d ciphertexts, error %v", i, rec.ID, ciphertexts([]byte(l)), err)
		}
	}
}

// TestFileTraces: the traces of a phase move to its subdirectory, and nothing else does.
func TestFileTraces(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"rkms-slow-1.trace", "rkms-slow-2.trace", "other.txt"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := fileTraces(&Flags{SlowTrace: dir}, "write-half"); err != nil {
		t.Fatal(err)
	}
	moved, _ := filepath.Glob(filepath.Join(dir, "write-half", "*"))
	left, _ := filepath.Glob(filepath.Join(dir, "*.*"))
	if len(moved) != 2 || len(left) != 1 {
		t.Errorf("moved %v, left %v", moved, left)
	}
	if err := fileTraces(&Flags{}, "x"); err != nil {
		t.Errorf("without -slow-trace: %v", err)
	}
}

// TestReportPrint: every target is printed per round and judged on the median, with the
// configurations and the machine load at start and end.
func TestReportPrint(t *testing.T) {
	res := func(rate int, lat time.Duration) *Result {
		return &Result{Requests: rate, Elapsed: time.Second, lat: []time.Duration{lat, lat}}
	}
	meas := func(name string, rate int, lat time.Duration, msgs uint64) *Measured {
		m := &Measured{Name: name, Result: &Result{}, Messages: msgs}
		for range 3 {
			r := res(rate, lat)
			m.Rounds = append(m.Rounds, r)
			m.RoundCPU = append(m.RoundCPU, time.Duration(rate)*time.Microsecond)
			m.Result.merge(r)
		}
		m.CPU = time.Duration(3*rate) * time.Microsecond
		return m
	}
	rep := &Report{Flags: Flags{Duration: 3 * time.Second, Rounds: 3, MaxWorkers: 32, Concurrency: 16, BodySize: 1024, Keys: 10},
		LoadStart: "1.00 0.50 0.25 1/100 1", LoadEnd: "2.00 1.00 0.50 1/100 2",
		Stalls: Stalls{Wakes: 1000, Count: 2, Longest: 90 * time.Millisecond, Total: 120 * time.Millisecond},
		Direct: []*Measured{meas(RoleNoop, 1000, time.Millisecond, 4000), meas(RoleRKMS, 1000, time.Millisecond, 4000)},
		Routes: []*RouteRun{{Kind: "encrypt-only POST /write", Rate: 500,
			Max:  []*Measured{meas(EnvoyNoFilter, 3000, time.Millisecond, 0), meas(EnvoyNoop, 1000, time.Millisecond, 4000), meas(EnvoyRKMS, 950, time.Millisecond, 2000)},
			Half: []*Measured{meas(EnvoyNoFilter, 500, time.Millisecond, 0), meas(EnvoyNoop, 500, 4*time.Millisecond, 2000), meas(EnvoyRKMS, 500, 5*time.Millisecond, 1000)}}},
		Health: []*Measured{meas(EnvoyNoFilter, 8000, time.Millisecond, 0), meas(EnvoyRKMS, 8000, time.Millisecond, 0)},
	}
	var b strings.Builder
	rep.Print(&b)
	out := b.String()
	for _, want := range []string{
		"at start 1.00 0.50 0.25 1/100 1; at end 2.00",
		"MET     (1) direct: CPU per stream rkms/no-op = 1.000 (target <= 1.15x)",
		"MET     (2) encrypt-only POST /write: max throughput rkms/no-op = 0.950 (target >= 0.90x)",
		"MISSED  (2) encrypt-only POST /write: p99 rkms/no-op = 1.250 (target <= 1.00x)",
		"MET     (3) unprotected route: ext_proc messages = 0 (target 0)",
		"noise band 3.0%",
		"policy \"write\": req headers SEND body BUFFERED",
		"4-phase BUFFERED",
		"machine stalls: 2 of 1000 wake-ups",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestStallMeter(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	m := startStallMeter(ctx)
	time.Sleep(50 * time.Millisecond)
	cancel()
	<-m.done
	if s := m.result(); s.Wakes == 0 || s.Count > s.Wakes {
		t.Errorf("stall meter: %+v", s)
	}
}
