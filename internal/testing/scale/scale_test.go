package scale

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/rkms/rkms/internal/plan"
	testenv "github.com/rkms/rkms/internal/testing/env"
)

// The flags of `make scale`; the defaults are the small size `make test` runs.
var (
	fTenants  = flag.Int("scale.tenants", 300, "tenants")
	fReplicas = flag.Int("scale.replicas", 2, "rkms replicas")
	fTTL      = flag.Duration("scale.ttl", 5*time.Second, "cache.ttl")
	fMaxKeys  = flag.Int("scale.max-keys", plan.DefaultMaxKeys, "cache.max_keys")
	fRate     = flag.Float64("scale.rate", 200, "requests/s over the fleet")
	fDist     = flag.String("scale.dist", "uniform", "uniform or zipf:S")
	fSpread   = flag.String("scale.spread", "random", "random or round-robin over the replicas")
	fWarm     = flag.Duration("scale.warm", 0, "warm-up not counted (0: one ttl)")
	fMeasure  = flag.Duration("scale.measure", 0, "measured window (0: two ttls)")
	fSamples  = flag.Int("scale.samples", 4, "samples over the measured window")
	fMode     = flag.String("scale.mode", "direct", "kms.mode: direct or hierarchical")
	fBranches = flag.Int("scale.branch-keys", 1, "kms.hierarchical.branch_keys")
	fWrapped  = flag.Duration("scale.wrapped-ttl", 0, "cache.wrapped_ttl (0: four ttls)")
	fWorkers  = flag.Int("scale.workers", 64, "requests in flight at most")
	fReport   = flag.String("scale.report", "", "write the Markdown report to this file too")
)

func options(t *testing.T) Options {
	dist, err := plan.ParseDist(*fDist)
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Tenants: *fTenants, Replicas: *fReplicas, TTL: *fTTL, MaxKeys: *fMaxKeys, Rate: *fRate, Dist: dist,
		Spread: *fSpread, Warm: *fWarm, Measure: *fMeasure, Samples: *fSamples, Mode: plan.Mode(*fMode),
		BranchKeys: *fBranches, WrappedTTL: *fWrapped, Workers: *fWorkers}
	if o.Warm == 0 {
		o.Warm = o.TTL
	}
	if o.Measure == 0 {
		o.Measure = 2 * o.TTL
	}
	if o.WrappedTTL == 0 {
		o.WrappedTTL = 4 * o.TTL
	}
	switch {
	case o.Tenants < 1 || o.Tenants > 1_000_000, o.Replicas < 1 || o.Replicas > 16, o.Rate <= 0 || o.Rate > 100000,
		o.Samples < 1 || o.Samples > 1000, o.Workers < 1 || o.Workers > 4096,
		o.Spread != "random" && o.Spread != "round-robin", o.Mode != plan.Direct && o.Mode != plan.Hierarchical:
		t.Fatalf("scale: options out of bounds: %+v", o)
	}
	return o
}

// TestScale runs the scale simulation (doc.go) and fails when the fleet's KMS or store rate is
// more than 10 % off the planner in direct mode, or when the emulators logged a different number
// of Decrypt calls than the replicas counted.
func TestScale(t *testing.T) {
	testenv.Integration(t)
	o := options(t)
	r := run(t, o)
	var b strings.Builder
	if err := WriteReport(&b, r); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + b.String())
	if *fReport != "" {
		if err := os.WriteFile(*fReport, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if r.Failed > 0 {
		t.Errorf("%d requests failed", r.Failed)
	}
	if r.Rate < 0.9*o.Rate {
		t.Errorf("sent %.1f requests/s of %.0f: the machine could not keep up, the comparison is off", r.Rate, o.Rate)
	}
	last := r.Samples[len(r.Samples)-1]
	if f := r.Fleet(); float64(last.Emulator) < f.KMSDecrypt*0.99 || float64(last.Emulator) > f.KMSDecrypt*1.01+2 {
		t.Errorf("emulators logged %d Decrypt calls, the replicas counted %.0f", last.Emulator, f.KMSDecrypt)
	}
	if o.Mode == plan.Direct && !r.Within(0.10) {
		k, s := r.Ratios()
		t.Errorf("measured/planned: KMS %.3f, store %.3f: more than 10 %% off", k, s)
	}
}

// run starts the components, seeds the tenants, drives the traffic and collects the counters.
func run(t *testing.T, o Options) Result {
	dir := t.TempDir()
	bin := buildRKMS(t, dir)
	counters := make([]*LineCounter, 3)
	var regions []Region
	for i, name := range []string{"us-east-1", "us-west-2", "eu-west-1"} {
		counters[i] = NewLineCounter("Decryption called")
		k := testenv.StartKMSTee(t, name, counters[i])
		regions = append(regions, Region{Name: name, KeyARN: k.KeyARN, Endpoint: k.Endpoint})
	}
	dyn := testenv.StartDynalite(t)
	tokenBytes := make([]byte, 24)
	if _, err := rand.Read(tokenBytes); err != nil {
		t.Fatal(err)
	}
	token := hex.EncodeToString(tokenBytes)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: o.Workers, MaxConnsPerHost: o.Workers}}
	c := &Client{HTTP: hc, Token: token}
	ctx := context.Background()

	// Seed through a replica of its own, stopped afterwards: the measured ones start cold.
	seeder := startReplica(t, bin, filepath.Join(dir, "seed"), o, regions, dyn.Endpoint, token, true)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := 0; i < o.Tenants; i++ {
		g.Go(func() error { return c.GetKey(gctx, seeder.base, TenantID(i), true) })
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("seeding %d tenants: %v\n%s", o.Tenants, err, seeder.logs.String())
	}
	seeder.stop()
	t.Logf("seeded %d tenants", o.Tenants)

	reps := make([]*replica, o.Replicas)
	bases := make([]string, o.Replicas)
	for i := range reps {
		reps[i] = startReplica(t, bin, filepath.Join(dir, fmt.Sprintf("r%d", i+1)), o, regions, dyn.Endpoint, token, false)
		bases[i] = reps[i].base
	}
	res := Result{Options: o, LoadStart: LoadAvg()}
	dctx, stop := context.WithCancel(ctx)
	tr := &Traffic{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); Drive(dctx, o, c, bases, NewPicker(o.Tenants, o.Dist), 42, tr) }()

	snapshot := func() ([]Calls, uint64) {
		cs := make([]Calls, len(reps))
		for i, r := range reps {
			var err error
			if cs[i], err = Scrape(ctx, hc, r.base); err != nil {
				t.Fatal(err)
			}
		}
		var n uint64
		for _, lc := range counters {
			n += lc.Count()
		}
		return cs, n
	}
	time.Sleep(o.Warm)
	base, baseEmu := snapshot()
	// The sent counter is read around the window: the achieved rate is what the planner gets.
	sent0 := tr.Sent.Load()
	start := time.Now()
	for i := 1; i <= o.Samples; i++ {
		time.Sleep(time.Until(start.Add(o.Measure * time.Duration(i) / time.Duration(o.Samples))))
		cs, emu := snapshot()
		s := Sample{At: time.Since(start), Emulator: emu - baseEmu}
		for j := range cs {
			s.Replicas = append(s.Replicas, cs[j].Sub(base[j]))
		}
		res.Samples = append(res.Samples, s)
	}
	sent1 := tr.Sent.Load()
	stop()
	wg.Wait()
	res.LoadEnd = LoadAvg()
	res.Rate = float64(sent1-sent0) / o.Measure.Seconds()
	res.Failed, res.Late = tr.Failed.Load(), tr.Late.Load()
	if e, ok := tr.FirstErr.Load().(string); ok {
		t.Logf("first request error: %s", e)
	}
	pred, err := plan.Compute(plan.Params{Tenants: o.Tenants, Replicas: o.Replicas, TTL: o.TTL, MaxKeys: o.MaxKeys, Rate: res.Rate,
		Dist: o.Dist, Mode: o.Mode, BranchKeys: o.BranchKeys, WrappedTTL: o.WrappedTTL, Regions: len(regions)})
	if err != nil {
		t.Fatal(err)
	}
	res.Predicted = pred
	return res
}

// buildRKMS builds cmd/rkms into dir.
func buildRKMS(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "rkms")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/rkms")
	cmd.Dir = testenv.RepoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/rkms: %v\n%s", err, out)
	}
	return bin
}

type replica struct {
	base string
	cmd  *exec.Cmd
	done chan struct{}
	logs *testenv.LockedBuffer
}

func (r *replica) stop() {
	_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		<-r.done
	}
}

// startReplica starts `rkms serve` on its own configuration and waits for /readyz.
func startReplica(t *testing.T, bin, dataDir string, o Options, regions []Region, dynamo, token string, createTable bool) *replica {
	t.Helper()
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	ports, err := testenv.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dataDir, "rkms.yaml")
	if err := os.WriteFile(cfgPath, []byte(ReplicaConfig(o, dataDir, ports[0], ports[1], regions, dynamo, createTable)), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &replica{base: fmt.Sprintf("http://127.0.0.1:%d", ports[0]), done: make(chan struct{}), logs: &testenv.LockedBuffer{Limit: 1 << 20}}
	r.cmd = exec.Command(bin, "serve", "--config", cfgPath)
	r.cmd.Env = testenv.ProcessEnv([]string{"RKMS_ADMIN_TOKEN"}, "RKMS_ADMIN_TOKEN="+token)
	r.cmd.Stdout, r.cmd.Stderr = r.logs, r.logs
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = r.cmd.Wait(); close(r.done) }()
	t.Cleanup(r.stop)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(r.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return r
			}
		}
		select {
		case <-r.done:
			t.Fatalf("rkms serve exited:\n%s", r.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("rkms serve not ready after 30s:\n%s", r.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
