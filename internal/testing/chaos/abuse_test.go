package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rkms/rkms/examples/app/recorder"
	"github.com/rkms/rkms/extproc/limits"
	"github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/internal/testing/envoytest"
)

var (
	abuseLong   = flag.Bool("abuse.long", false, "run the attacks at full volume for -abuse.hold each (make abuse)")
	abuseHold   = flag.Duration("abuse.hold", 0, "how long each attack lasts (default 3s, 20s with -abuse.long)")
	abuseReport = flag.String("abuse.report", "", "also write the abuse report (Markdown) to this file")
	// abuseBaseline leaves out the rkms settings that rkms does not know yet (issue13Settings):
	// rkms refuses to start on an unknown key, so this is how main is measured before them.
	abuseBaseline = flag.Bool("abuse.baseline", false, "run without issue 13's rkms settings (to measure main)")
)

// issue13Settings are the rkms settings the attacks rely on (issue 13; SECURITY.md): the one place
// to change them. extproc entries go into the extproc flow map, kms lines under kms.
var issue13Settings = replicaOptions{
	extproc: "stream_timeout: 60s, idle_timeout: 30s, first_message_timeout: 5s, memory_budget_bytes: " +
		strconv.Itoa(memoryBudget),
	kms: "  create_rate: 10\n  create_burst: 20\n",
}

// The issue's promises, asserted for the well-behaved client during every attack.
const (
	goodRate       = 50                    // requests per second
	goodMinSuccess = 0.99                  // success rate
	goodMaxP99     = 50 * time.Millisecond // 99th percentile latency
	// memoryBudget is extproc.memory_budget_bytes in the attacks' rkms: what a container limit of
	// containerLimit gives (half of it); rkms also gets the GOMEMLIMIT that limit gives in
	// production (90 %, memlimit.GoLimit), as the env variable.
	memoryBudget   = 64 << 20
	containerLimit = 2 * memoryBudget
	// rssOverhead is what rkms may hold beyond the budget (RELIABILITY.md, "Limits"): rkms idle
	// (about 32 MiB of RSS: binary, runtime, caches, SDK clients), gRPC's buffers (64 KiB per
	// stream, 1 MiB per connection) and the garbage the collector may keep below GOMEMLIMIT
	// (115 MiB). Measured peaks under the direct flood (300 x 1 MiB at once, 2 vCPU): 117-127 MiB.
	// A peer that breaks the protocol adds at most one unannounced message per stream; the
	// attacks here do not.
	rssOverhead = 64 << 20
	createRate  = 10 // kms.create_rate
	createBurst = 20 // kms.create_burst
)

// The attacks' intensities (issue 13), the same in the short and the long form except for the
// number of new tenants: each attack stresses the resource it is about (stream slots, body
// memory, key creation), paced so that it does not just fill this 2-core machine with bytes.
const (
	slowBodies      = 1100 // connections, each a POST sending a byte a second
	idleStreams     = 2000 // gRPC streams that never send
	directBodies    = 300  // 1 MiB bodies at once straight to ext_proc, per wave
	envoyBodies     = 400  // 700 KB POSTs at once through Envoy, per wave
	newTenantsShort = 200
	newTenantsLong  = 1000
	newTenantRate   = 100  // new tenants per second
	loginRate       = 1000 // bad admin tokens per second
)

var (
	directPeriod = flag.Duration("abuse.direct-period", time.Second, "one wave of the direct memory flood every this long")
	envoyPeriod  = flag.Duration("abuse.envoy-period", 3*time.Second, "one wave of the memory flood through Envoy every this long")
	envoySpread  = flag.Duration("abuse.envoy-spread", 2*time.Second, "how long each body of the memory flood through Envoy takes to send")
)

// hold is how long each attack lasts.
func hold() time.Duration {
	switch {
	case *abuseHold > 0:
		return *abuseHold
	case *abuseLong:
		return 20 * time.Second
	}
	return 3 * time.Second
}

// volume is n in a long run, else short (the short form must stay cheap in make test).
func volume(short, n int) int {
	if *abuseLong {
		return n
	}
	return short
}

// abuseStack is one rkms process (with three regions and dynalite), the real Envoy running
// envoy/ingress.yaml in front of it and an app: each attack gets a fresh one, so that its peak
// memory is its own.
type abuseStack struct {
	b     *backend
	rep   *replica
	envoy *testenv.Envoy
	url   string // Envoy's listener
}

// baselinePath is a route of the attacks' Envoy without rkms: envoy/ingress.yaml's /patients
// route (token verified, body buffered) with ext_proc and the stamp check off. The attacks
// through Envoy run against it first, as the baseline of the same run: what Envoy alone does to
// the good client under the same flood.
const baselinePath = "/baseline"

// abuseApp is the recorder app, except that requests with an X-Sink header (the attackers') are
// read, not stored, and answered 201 with an empty object, and that baselinePath is stripped from
// paths. It runs in its own process (abuseAppEnv), so that the floods' bodies it reads do not
// share a runtime with the good client.
type abuseApp struct{ rec *recorder.App }

func (a abuseApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.URL.Path = strings.TrimPrefix(r.URL.Path, baselinePath)
	if r.Header.Get("X-Sink") == "" {
		a.rec.ServeHTTP(w, r)
		return
	}
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write([]byte("{}"))
}

// abuseAppEnv set to 1 makes the test binary the app of an abuse stack (TestMain): it listens on
// a loopback port, prints "ready ADDR" and serves until its stdin is closed.
const abuseAppEnv = "RKMS_ABUSE_APP"

func abuseAppMain() int {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srv := &http.Server{Handler: abuseApp{recorder.New()}, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(lis) }()
	fmt.Printf("ready %s\n", lis.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	srv.Close()
	return 0
}

// startAbuseApp runs abuseAppMain in a child process until the test ends and returns its port.
func startAbuseApp(t *testing.T) int {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), abuseAppEnv+"=1")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "ready ")
	if err != nil || !ok {
		t.Fatalf("app child: %q %v", line, err)
	}
	tcp, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return tcp.Port
}

func startAbuseStack(t *testing.T, o replicaOptions) *abuseStack {
	t.Helper()
	s := &abuseStack{b: startBackend(t)}
	o.cacheTTL, o.policies = time.Minute, patientsPolicy
	o.env = append(o.env, fmt.Sprintf("GOMEMLIMIT=%d", limits.GoLimit(containerLimit)))
	if !*abuseBaseline {
		o.extproc = strings.Trim(o.extproc+", "+issue13Settings.extproc, ", ")
		o.kms += issue13Settings.kms
	}
	s.rep = s.b.newReplica(t, "rkms", o)
	s.rep.start()
	s.rep.waitReady(60 * time.Second)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("rkms output (tail):\n%s", tail(s.rep.output(), 3000))
		}
	})
	listener := testenv.FreePort(t)
	cfg := envoyConfig(t, map[string]int{"admin": testenv.FreePort(t), "listener": listener,
		"app": startAbuseApp(t)}, []int{s.rep.extproc})
	s.envoy = testenv.StartEnvoy(t, withBaselineRoute(t, cfg))
	s.url = fmt.Sprintf("http://127.0.0.1:%d", listener)
	return s
}

// pid is the rkms process's id.
func (r *replica) pid() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return 0
	}
	return r.cmd.Process.Pid
}

// withBaselineRoute adds the route of baselinePath to the Envoy configuration cfg (JSON).
func withBaselineRoute(t *testing.T, cfg string) string {
	t.Helper()
	var boot map[string]any
	if err := json.Unmarshal([]byte(cfg), &boot); err != nil {
		t.Fatal(err)
	}
	at := func(v any, keys ...any) any {
		for _, k := range keys {
			switch k := k.(type) {
			case string:
				v = v.(map[string]any)[k]
			case int:
				v = v.([]any)[k]
			}
		}
		return v
	}
	vh := at(boot, "static_resources", "listeners", 0, "filter_chains", 0, "filters", 0, "typed_config",
		"route_config", "virtual_hosts", 0).(map[string]any)
	route := map[string]any{
		"match": map[string]any{"prefix": baselinePath},
		"route": map[string]any{"cluster": "app", "timeout": "15s"},
		"typed_per_filter_config": map[string]any{
			"envoy.filters.http.jwt_authn": map[string]any{
				"@type":            "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig",
				"requirement_name": "tenant"},
			"envoy.filters.http.ext_proc": map[string]any{
				"@type":    "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute",
				"disabled": true},
			"envoy.filters.http.rbac": map[string]any{
				"@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute"},
		},
	}
	vh["routes"] = append([]any{route}, vh["routes"].([]any)...)
	out, err := json.Marshal(boot)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// envoyErrorStats lists Envoy's non-zero counters about ext_proc failures and the rkms
// cluster's overflows and resets, to tell why a good request failed.
func envoyErrorStats(adminURL string) string {
	resp, err := http.Get(adminURL + "/stats?filter=(ext_proc|cluster\\.rkms\\.(upstream_rq_pending_overflow|upstream_cx_overflow|upstream_rq_pending_failure|upstream_rq_rx_reset|upstream_rq_tx_reset|upstream_rq_timeout|upstream_rq_maintenance|upstream_rq_retry_overflow|upstream_cx_destroy))")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if line != "" && !strings.HasSuffix(line, ": 0") {
			out = append(out, line)
		}
	}
	return strings.Join(out, ", ")
}

// procCPU is a process's user + system CPU time so far (/proc/PID/stat, clock ticks of 10 ms).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name (in parentheses, may hold spaces): utime is the 14th
	// field of the line, the 12th after the name.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond
}

// peakRSS reads VmHWM (the peak resident memory of the process's life) from /proc/PID/status.
func peakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// tally counts outcomes by kind (an HTTP status, a gRPC code, "no reply"), safe for concurrent
// use.
type tally struct {
	mu sync.Mutex
	n  map[string]int
}

// addStatus counts an HTTP status (0: no reply).
func (c *tally) addStatus(status int) {
	if status == 0 {
		c.add("no reply")
		return
	}
	c.add(strconv.Itoa(status))
}

func (c *tally) add(k string) {
	c.mu.Lock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[k]++
	c.mu.Unlock()
}

func (c *tally) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(c.n)) {
		parts = append(parts, fmt.Sprintf("%s: %d", k, c.n[k]))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// goodClient is the well-behaved client: goodRate requests per second at fixed times (open loop:
// a late reply does not delay the next request), each one checked, latency counted from its
// scheduled start.
type goodClient struct {
	name string
	do   func(ctx context.Context) error // one request; nil error: success

	mu        sync.Mutex
	latencies []time.Duration
	failures  tally
	firstErr  error
}

func (g *goodClient) run(ctx context.Context) {
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; ; i++ {
		at := start.Add(time.Duration(i) * time.Second / goodRate)
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-time.After(time.Until(at)):
		}
		wg.Go(func() {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			err := g.do(rctx)
			g.mu.Lock()
			defer g.mu.Unlock()
			g.latencies = append(g.latencies, time.Since(at))
			if err != nil {
				var se statusError
				errors.As(err, &se) // status 0 (no reply) otherwise
				g.failures.addStatus(se.status)
				if g.firstErr == nil {
					g.firstErr = fmt.Errorf("%s: %w", g.name, err)
				}
			}
		})
	}
}

// statusError is a request that got an unexpected HTTP status.
type statusError struct {
	status int
	body   string
}

func (e statusError) Error() string { return fmt.Sprintf("status %d: %.200s", e.status, e.body) }

// summary returns the requests sent, the success rate and the 99th percentile latency.
func (g *goodClient) summary() (n int, success float64, p99 time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	n = len(g.latencies)
	if n == 0 {
		return 0, 0, 0
	}
	failed := 0
	for _, v := range g.failures.n {
		failed += v
	}
	l := slices.Clone(g.latencies)
	slices.Sort(l)
	return n, float64(n-failed) / float64(n), l[min(n-1, n*99/100)]
}

// patientsClient is the good client of the attacks through Envoy: a POST /patients of a fresh
// record for an existing tenant, whose answer must hold the same plaintexts (encrypted on the
// way in, decrypted on the way out).
func patientsClient(url, tenant string) *goodClient {
	return postClient("patients client", url+"/patients", tenant)
}

// plainClient is the good client of the baseline runs: the same request as patientsClient's on
// baselinePath (Envoy alone, no rkms), answered by the app with its own body.
func plainClient(url, tenant string) *goodClient {
	return postClient("baseline client", url+baselinePath+"/patients", tenant)
}

// postClient POSTs a fresh patient record for tenant to target and checks that the answer holds
// the same plaintexts.
func postClient(name, target, tenant string) *goodClient {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	tok, err := envoytest.TenantToken(tenant)
	if err != nil {
		panic(err)
	}
	return &goodClient{name: name, do: func(ctx context.Context) error {
		p := patient{Ref: token("r"), Tenant: tenant, Name: "good", SSN: token("SSN-"), Contact: contact{Email: token("MAIL-") + "@example.com"}}
		body, _ := json.Marshal(p)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var got patient
		if resp.StatusCode != http.StatusCreated || json.Unmarshal(b, &got) != nil || got.SSN != p.SSN || got.Contact.Email != p.Contact.Email {
			return statusError{resp.StatusCode, string(b)}
		}
		return nil
	}}
}

// outcome is one attack's line of the report.
type outcome struct {
	attack   string
	rate     string // what the attacker sent
	baseline bool   // Envoy alone: reported, not asserted
	// baselineP99 is the good client's p99 through Envoy alone under the same attack, in the
	// same run (0: the attack has no baseline run). When Envoy alone already misses goodMaxP99,
	// rkms is held to adding at most goodMaxP99 to it, and the test says so in its log.
	baselineP99 time.Duration
	// reference, if not nil, is a second good client on the route without rkms (Envoy alone),
	// run at the same moment as good: the same attack, the same machine load. Its p99 joins
	// baselineP99 (the larger counts).
	reference *goodClient
	// knownGap is an open finding's measured addition to the good client's p99 (documented in
	// RELIABILITY.md), allowed on top of the limit and logged; 0 for attacks without one.
	knownGap time.Duration
	good     *goodClient
	rss      int64 // rkms's peak resident memory
	refused  *tally
	notes    string
	cpu      string // CPU of each process during the attack, in % of one core
	res      attackResult
}

// underAttack runs the attack of spec in a child process (runAttacker) for hold(), with the good
// client running in this process until the child has exited, then records the outcome with
// rkms's peak memory and each process's CPU. Unless o.baseline, it asserts the good client's
// success rate and p99.
func underAttack(t *testing.T, s *abuseStack, good *goodClient, o *outcome, spec attackSpec) attackResult {
	t.Helper()
	// A warm start: the good tenant's key exists and is cached, connections are open.
	for range 5 {
		if err := good.do(context.Background()); err != nil {
			t.Fatalf("good client before the attack: %v", err)
		}
	}
	spec.Hold = hold()
	pids := []int{s.envoy.Pid(), s.rep.pid(), os.Getpid()}
	var before []time.Duration
	for _, p := range pids {
		before = append(before, procCPU(p))
	}
	began := time.Now()
	goodCtx, stopGood := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); good.run(goodCtx) }()
	refDone := make(chan struct{})
	if o.reference != nil {
		go func() { defer close(refDone); o.reference.run(goodCtx) }()
	} else {
		close(refDone)
	}
	res, attackerCPU := runAttacker(t, spec)
	stopGood()
	<-done
	<-refDone
	if o.reference != nil {
		_, _, refP99 := o.reference.summary()
		t.Logf("%s: reference client (Envoy alone, same moment) p99 %v", o.attack, refP99.Round(time.Millisecond))
		o.baselineP99 = max(o.baselineP99, refP99)
	}
	wall := time.Since(began)
	pct := func(d time.Duration) float64 { return 100 * d.Seconds() / wall.Seconds() }
	o.cpu = fmt.Sprintf("envoy %.0f, rkms %.0f, test %.0f, attacker %.0f", pct(procCPU(pids[0])-before[0]),
		pct(procCPU(pids[1])-before[1]), pct(procCPU(pids[2])-before[2]), pct(attackerCPU))
	o.good, o.res, o.refused = good, res, &tally{n: res.Refused}
	if !o.baseline {
		o.rss = peakRSS(s.rep.pid())
	}
	recordOutcome(o)
	n, ok, p99 := good.summary()
	t.Logf("%s: attack %s; good client %d requests, %.2f%% ok (failures %s, first: %v), p99 %v; rkms peak RSS %d MiB; attack refused: %s; %s; CPU %% of a core: %s",
		o.attack, o.rate, n, 100*ok, good.failures.String(), good.firstErr, p99.Round(time.Millisecond), o.rss>>20, o.refused.String(), o.notes, o.cpu)
	if o.baseline {
		return res
	}
	limit := goodMaxP99
	if o.baselineP99 >= goodMaxP99 {
		limit = o.baselineP99 + goodMaxP99
		t.Logf("NOTE: Envoy alone misses the %v p99 target under this attack (p99 %v in the same run): rkms is held to %v (Envoy alone + %v)",
			goodMaxP99, o.baselineP99.Round(time.Millisecond), limit.Round(time.Millisecond), goodMaxP99)
	}
	if o.knownGap > 0 {
		limit += o.knownGap
		t.Logf("NOTE: the open finding of this attack (rkms adds about %v under it; RELIABILITY.md) is allowed: limit %v",
			o.knownGap, limit.Round(time.Millisecond))
	}
	if ok < goodMinSuccess || p99 >= limit {
		t.Logf("envoy counters: %s", envoyErrorStats(s.envoy.AdminURL))
	}
	if ok < goodMinSuccess {
		t.Errorf("good client success %.2f%% < %.0f%% (first failure: %v)", 100*ok, 100*goodMinSuccess, good.firstErr)
	}
	if p99 >= limit {
		t.Errorf("good client p99 %v >= %v", p99, limit)
	}
	return res
}

var (
	outcomesMu sync.Mutex
	outcomes   []*outcome
)

func recordOutcome(o *outcome) {
	outcomesMu.Lock()
	outcomes = append(outcomes, o)
	outcomesMu.Unlock()
}

// abuseReportTable renders the outcomes as RELIABILITY.md's "Abuse runs" table.
func abuseReportTable(os []*outcome) string {
	var b strings.Builder
	b.WriteString("| attack | attack rate / volume | good client success | good client p99 | rkms peak RSS | refused (status: count) | CPU, % of one core |\n")
	b.WriteString("|---|---|---:|---:|---:|---|---|\n")
	for _, o := range os {
		n, ok, p99 := o.good.summary()
		rss := "-"
		if !o.baseline {
			rss = fmt.Sprintf("%d MiB", o.rss>>20)
		}
		fmt.Fprintf(&b, "| %s | %s | %.2f %% of %d | %v | %s | %s%s | %s |\n", o.attack, o.rate, 100*ok, n,
			p99.Round(time.Millisecond), rss, o.refused.String(), prefixed("; ", o.notes), o.cpu)
	}
	return b.String()
}

// TestAbuse runs each attack of issue 13 against a fresh rkms behind the real Envoy, with a
// well-behaved client at goodRate beside it, and prints the report (make abuse writes it).
func TestAbuse(t *testing.T) {
	testenv.Integration(t)
	rkmsBinary(t) // built once, before the clocks start
	for _, a := range []struct {
		name string
		run  func(t *testing.T)
	}{
		{"slow bodies through Envoy", attackSlowBodies},
		{"idle streams to ext_proc", attackIdleStreams},
		{"memory flood to ext_proc", attackMemoryDirect},
		{"memory flood through Envoy", attackMemoryEnvoy},
		{"tenant flood", attackTenants},
		{"admin login flood", attackLogins},
	} {
		t.Run(strings.ReplaceAll(a.name, " ", "_"), a.run)
	}
	outcomesMu.Lock()
	rep := abuseReportTable(outcomes)
	outcomesMu.Unlock()
	mode := "short"
	if *abuseLong {
		mode = "long"
	}
	if *abuseBaseline {
		mode += ", baseline (without issue 13's rkms settings)"
	}
	rep = fmt.Sprintf("abuse run (%s; each attack %v; good client %d req/s):\n\n%s", mode, hold(), goodRate, rep)
	t.Log("\n" + rep)
	if *abuseReport != "" {
		if err := os.WriteFile(*abuseReport, []byte(rep), 0o644); err != nil {
			t.Error(err)
		}
	}
}
