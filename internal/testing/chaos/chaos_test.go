package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/rkms/rkms/envoy"
	"github.com/rkms/rkms/examples/app/recorder"
	"github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/internal/testing/envoytest"
	"github.com/rkms/rkms/store"
	"github.com/rkms/rkms/store/dynamodb"
)

// cacheTTL is the replicas' key cache TTL: short, so that the run exercises refetches, expiry
// during outages (stale-if-error) and the final reads come from the store.
const cacheTTL = 2 * time.Second

const patientsPolicy = `  - name: patients
    match: {path_prefix: /patients, methods: [POST, GET]}
    key_id: "tenant-{jwt:tenant}"
    request:  {encrypt: ["$.ssn", "$.contact.email"]}
    response: {decrypt: ["$.ssn", "$.contact.email"]}
    mode: randomized
`

// phase is one step of the run: an optional fault held for a while, then healed and watched.
type phase struct {
	name  string
	fault func(t *testing.T) // nil: no fault
	heal  func(t *testing.T)
	hold  time.Duration
	after time.Duration
	// expect: which requests RELIABILITY.md lets this fault fail (checkAvailability).
	expect expect

	start, healed, end time.Time
}

// cluster is everything the chaos run starts.
type cluster struct {
	b     *backend
	reps  []*replica
	app   *recorder.App
	envoy *testenv.Envoy
	url   string
}

func startCluster(t *testing.T) *cluster {
	c := &cluster{b: startBackend(t), app: recorder.New()}
	for i := range 2 {
		c.reps = append(c.reps, c.b.newReplica(t, fmt.Sprintf("rkms-%d", i+1),
			replicaOptions{cacheTTL: cacheTTL, warmup: true, policies: patientsPolicy}))
	}
	for _, r := range c.reps { // one after the other: both create the table if missing
		r.start()
		r.waitReady(60 * time.Second)
	}

	appLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	appSrv := &http.Server{Handler: c.app, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = appSrv.Serve(appLis) }()
	t.Cleanup(func() { appSrv.Close() })

	listener := testenv.FreePort(t)
	cfg := envoyConfig(t, map[string]int{"admin": testenv.FreePort(t), "listener": listener,
		"app": appLis.Addr().(*net.TCPAddr).Port}, []int{c.reps[0].extproc, c.reps[1].extproc})
	c.envoy = testenv.StartEnvoy(t, cfg)
	c.url = fmt.Sprintf("http://127.0.0.1:%d", listener)
	return c
}

// envoyConfig is the shipped envoy/ingress.yaml on the test's ports and the tests' JWKS, with its
// rkms cluster pointed at both replicas and health checked over gRPC (a replica that is down or
// still warming up gets no ext_proc streams).
func envoyConfig(t *testing.T, ports map[string]int, rkmsPorts []int) string {
	t.Helper()
	raw, err := envoy.Config("ingress.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rendered, err := envoy.Render(raw, ports)
	if err == nil {
		rendered, err = envoy.RenderFiles(rendered, map[string]string{"jwks": envoytest.JWKSFile(t)})
	}
	if err != nil {
		t.Fatal(err)
	}
	var boot map[string]any
	if err := yaml.Unmarshal(rendered, &boot); err != nil {
		t.Fatal(err)
	}
	clusters := boot["static_resources"].(map[string]any)["clusters"].([]any)
	found := false
	for _, cl := range clusters {
		cm := cl.(map[string]any)
		if cm["name"] != "rkms" {
			continue
		}
		found = true
		var eps []any
		for _, p := range rkmsPorts {
			eps = append(eps, map[string]any{"endpoint": map[string]any{"address": map[string]any{
				"socket_address": map[string]any{"address": "127.0.0.1", "port_value": p}}}})
		}
		cm["load_assignment"] = map[string]any{"cluster_name": "rkms",
			"endpoints": []any{map[string]any{"lb_endpoints": eps}}}
		cm["health_checks"] = []any{map[string]any{"timeout": "1s", "interval": "1s",
			"unhealthy_threshold": 1, "healthy_threshold": 1, "no_traffic_interval": "1s",
			"grpc_health_check": map[string]any{}}}
	}
	if !found {
		t.Fatal("envoy/ingress.yaml has no rkms cluster")
	}
	out, err := json.Marshal(boot) // JSON is YAML
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestChaos(t *testing.T) {
	testenv.Integration(t)
	P := *phaseFlag
	c := startCluster(t)
	kms, db := c.b.kms, c.b.db

	// The existing tenants: created before the load, and cached by both replicas.
	pool := make([]string, 20)
	for i := range pool {
		pool[i] = fmt.Sprintf("t%02d", i)
		for _, r := range c.reps {
			if _, _, st, err := r.key(context.Background(), "tenant-"+pool[i]); st != http.StatusOK {
				t.Fatalf("%s: create tenant %s: %d %v", r.name, pool[i], st, err)
			}
		}
	}

	var staleChecks []string
	var restartTook time.Duration
	phases := []*phase{
		{name: "steady (baseline)", hold: P},
		{name: "kill region us-east-1",
			fault: func(t *testing.T) { kms[0].Stop() }, heal: func(t *testing.T) { kms[0].Start() }, hold: P, after: P},
		{name: "kill 2 of 3 regions (us-east-1, us-west-2)",
			fault: func(t *testing.T) { kms[0].Stop(); kms[1].Stop() },
			heal:  func(t *testing.T) { kms[0].Start(); kms[1].Start() }, hold: P, after: P,
			expect: expect{newTenants: true}}, // fewer than min_regions (2) copies
		{name: "kill DynamoDB",
			fault: func(t *testing.T) {
				staleChecks = c.staleCheck(t, "tenant-"+pool[0], db, max(P, 2*cacheTTL+2*time.Second))
			},
			heal: func(t *testing.T) { db.Start() }, after: P,
			expect: expect{newTenants: true, reads: true}}, // no store: no new key, no uncached key
		{name: "restart replica rkms-2 (SIGKILL, warm-up)",
			fault: func(t *testing.T) {
				began := time.Now()
				c.reps[1].kill()
				c.reps[1].start()
				c.reps[1].waitReady(2 * time.Minute)
				restartTook = time.Since(began)
			},
			heal: func(t *testing.T) {}, after: P,
			expect: expect{inFlight: true}},
		{name: "stall region eu-west-1 (SIGSTOP)",
			fault: func(t *testing.T) { kms[2].Stall() }, heal: func(t *testing.T) { kms[2].Start() }, hold: P, after: P},
		{name: "steady (final)", hold: P},
	}
	planned := time.Duration(0)
	for _, p := range phases {
		planned += p.hold + p.after
	}
	const workers = 8
	l := newLoad(c.url, *rateFlag, workers, pool)
	loadCtx, stopLoad := context.WithCancel(context.Background())
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		l.run(loadCtx, int64(float64(*rateFlag)*(planned+5*time.Minute).Seconds()))
	}()
	runStart := time.Now()
	for _, p := range phases {
		p.start = time.Now()
		if p.fault != nil {
			t.Logf("%s: fault", p.name)
			p.fault(t)
		}
		time.Sleep(p.hold)
		if p.heal != nil {
			p.heal(t)
		}
		p.healed = time.Now()
		time.Sleep(p.after)
		p.end = time.Now()
	}
	stopLoad()
	<-loadDone
	runTook := time.Since(runStart)

	results, sent, tokens, newTried := l.snapshot()
	rep := report(phases, results)
	rep += fmt.Sprintf("\nload: %d requests offered at %d/s for %s through Envoy to 2 rkms replicas; restart of rkms-2 to ready: %s\n",
		len(results), *rateFlag, runTook.Round(time.Second), restartTook.Round(time.Millisecond))

	// Invariant 3: every response was a success with the right plaintexts or a documented,
	// clean failure.
	problems := 0
	for _, r := range results {
		if r.problem != "" {
			problems++
			if problems <= 10 {
				t.Errorf("invariant 3: %s %s at %s: %s", r.kind, r.tenant, r.start.Format("15:04:05.000"), r.problem)
			}
		}
	}

	// Availability, per phase (RELIABILITY.md, "Behaviour under faults"): only what a fault is
	// documented to fail may fail, and not long after it ends; existing tenants never fail.
	breaches, held := checkAvailability(phases, results, workers)
	for _, b := range breaches {
		t.Errorf("availability: %s", b)
	}
	rep += "\navailability held per phase (failures outside what RELIABILITY.md allows):\n"
	for _, h := range held {
		rep += "- " + h + "\n"
	}

	// Stale-if-error and warm-up.
	for _, s := range staleChecks {
		t.Error(s)
	}
	warm := c.reps[1].logLines("cache warm-up done")
	if len(warm) == 0 {
		t.Errorf("restarted replica logged no completed warm-up:\n%s", tail(c.reps[1].output(), 3000))
	} else if loaded, _ := warm[len(warm)-1]["loaded"].(float64); int(loaded) < len(pool) {
		t.Errorf("restarted replica warmed %v keys, want at least the %d pool tenants", loaded, len(pool))
	} else {
		rep += fmt.Sprintf("warm-up of the restarted replica: %v ids, %v loaded, %v missing, %v failed in %v\n",
			warm[len(warm)-1]["ids"], loaded, warm[len(warm)-1]["missing"], warm[len(warm)-1]["failed"], warm[len(warm)-1]["duration"])
	}
	for _, r := range c.reps {
		if n := len(r.logLines("key refresh failed; serving the cached key past its ttl")); n == 0 {
			t.Errorf("%s never served a stale key during the outages", r.name)
		}
	}

	// After the faults: let every cached key expire so that the reads below come from the store.
	time.Sleep(cacheTTL + time.Second)
	stored := c.storedRecords(t)
	n1 := checkNoPlaintext(t, c.app, stored, tokens)
	lost := c.readBack(t, stored, sent)
	seen := map[string]bool{}
	for _, s := range stored {
		seen[s.Ref] = true
	}
	createdOK := 0
	for _, r := range results {
		if r.ok && r.status == http.StatusCreated {
			createdOK++
		}
	}
	if len(stored) < createdOK {
		t.Errorf("invariant 2: the client saw %d records created, the app holds %d", createdOK, len(stored))
	}

	ids := append([]string{}, pool...)
	ids = append(ids, newTried...)
	st, err := dynamodb.New(context.Background(), dynamodb.Config{Table: "rkms_keys", Region: "us-east-1",
		Endpoints: []string{db.Endpoint}}, testenv.AWSConfig(t, "us-east-1"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	existing, disagree := c.checkKeysAgree(t, st, ids)
	repairTook, incomplete := waitRepaired(t, st, existing, 90*time.Second)

	var partial, repairs, staleServed int
	for _, r := range c.reps {
		partial += len(r.logLines("key version stored without some regions' copies; repair pending"))
		repairs += len(r.logLines("key repaired"))
		staleServed += len(r.logLines("key refresh failed; serving the cached key past its ttl"))
	}
	rep += fmt.Sprintf("key versions created without some region's copy: %d; repairs written: %d; stale-if-error refreshes that served the cached key: %d\n",
		partial, repairs, staleServed)
	switch {
	case partial == 0 && *modeFlag == "hierarchical":
		// Tenant keys make no KMS call in hierarchical mode, and the branch key is made
		// before the first fault: the repair of a branch key created with a region down is
		// TestIntegrationHierCreateRegionsDownThenRepair's (keyring).
		rep += "hierarchical mode: tenant keys are wrapped under the branch key, which all three regions hold (checked below)\n"
	case partial == 0:
		t.Error("no key was created while a region was down: the repair invariant was not exercised")
	}
	rep += fmt.Sprintf("\ninvariants: plaintext tokens found at the app: %d; records stored: %d (client saw %d created); records that failed to read back: %d; "+
		"key ids: %d existing, %d with replicas disagreeing; versions missing a region after repair: %d (all complete %s after the reads)\n",
		n1, len(stored), createdOK, lost, len(existing), disagree, incomplete, repairTook.Round(time.Millisecond))
	t.Log("\n" + rep)
	if *reportFlag != "" {
		if err := os.WriteFile(*reportFlag, []byte(rep), 0o644); err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		for _, r := range c.reps {
			t.Logf("--- %s output (tail) ---\n%s", r.name, tail(r.output(), 4000))
		}
		t.Logf("--- envoy output (tail) ---\n%s", tail(c.envoy.Output(), 4000))
	}
}

// staleCheck is the DynamoDB fault: it stops the store for hold, and meanwhile, past the cache
// TTL, asks both replicas for a key they had cached: they must serve the same key (stale). It
// returns the problems found.
func (c *cluster) staleCheck(t *testing.T, id string, db *testenv.Dynalite, hold time.Duration) []string {
	ctx := context.Background()
	before := make([]string, len(c.reps))
	for i, r := range c.reps {
		k, _, st, err := r.key(ctx, id)
		if st != http.StatusOK {
			return []string{fmt.Sprintf("stale check: %s: key %s before the outage: %d %v", r.name, id, st, err)}
		}
		before[i] = k
	}
	began := time.Now()
	db.Stop()
	time.Sleep(cacheTTL + 1500*time.Millisecond) // past the TTL and one sweep: the entries are stale
	var problems []string
	for i, r := range c.reps {
		k, _, st, err := r.key(ctx, id)
		switch {
		case st != http.StatusOK:
			problems = append(problems, fmt.Sprintf("stale-if-error: %s refused cached key %s %s into the store outage (TTL %s): %d %v",
				r.name, id, time.Since(began).Round(time.Millisecond), cacheTTL, st, err))
		case k != before[i]:
			problems = append(problems, fmt.Sprintf("stale-if-error: %s served another key for %s during the store outage", r.name, id))
		}
	}
	time.Sleep(hold - time.Since(began))
	return problems
}

// storedRecords reads every record the app holds, straight from the app.
func (c *cluster) storedRecords(t *testing.T) []storedRecord {
	t.Helper()
	w := httptest.NewRecorder()
	c.app.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/patients", nil))
	var list struct {
		Items []storedRecord `json:"items"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil {
		t.Fatalf("app list: %v", err)
	}
	return list.Items
}

type storedRecord struct {
	ID string `json:"id"`
	patient
}

var tokenRE = regexp.MustCompile(`(?:SSN|MAIL)-[0-9a-f]{24}`)

// checkNoPlaintext is invariant 1: no plaintext token the client sent is in any request the app
// received or any record it stored, and every stored tagged field is an rkms ciphertext. It
// returns the number of tokens found.
func checkNoPlaintext(t *testing.T, app *recorder.App, stored []storedRecord, tokens map[string]string) int {
	t.Helper()
	found := 0
	for _, r := range app.Received() {
		for _, m := range tokenRE.FindAllString(string(r.Body), -1) {
			if _, ok := tokens[strings.TrimSuffix(m, "@example.com")]; ok {
				found++
				if found <= 5 {
					t.Errorf("invariant 1: plaintext %s reached the app in %s %s", m, r.Method, r.Path)
				}
			}
		}
		for _, m := range tokenRE.FindAllString(r.Path+fmt.Sprint(r.Header), -1) {
			found++
			t.Errorf("invariant 1: plaintext %s in the path or headers the app received", m)
		}
	}
	for _, s := range stored {
		if !strings.HasPrefix(s.SSN, "rkms:") || !strings.HasPrefix(s.Contact.Email, "rkms:") {
			found++
			if found <= 5 {
				t.Errorf("invariant 1: record %s (ref %s) holds a tagged field that is not a ciphertext", s.ID, s.Ref)
			}
		}
	}
	return found
}

// readBack is invariant 2: every stored record reads back through Envoy, decrypted to exactly
// what the client sent. Transient 503/504 are retried (the faults are over, but a replica may
// still be probing a region); a record that never reads back is lost. It returns the count lost.
func (c *cluster) readBack(t *testing.T, stored []storedRecord, sent map[string]patient) int {
	t.Helper()
	client := &http.Client{Timeout: 20 * time.Second}
	work := make(chan storedRecord)
	var mu sync.Mutex
	lost := 0
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for s := range work {
				p, ok := sent[s.Ref]
				problem := "the app holds a record the client never sent"
				for try := 0; ok && try < 20; try++ {
					problem = readOne(client, c.url, s.ID, p)
					if problem == "" || !strings.HasPrefix(problem, "transient") {
						break
					}
					time.Sleep(500 * time.Millisecond)
				}
				if problem != "" {
					mu.Lock()
					lost++
					if lost <= 10 {
						t.Errorf("invariant 2: record %s (ref %s, tenant %s): %s", s.ID, s.Ref, s.Tenant, problem)
					}
					mu.Unlock()
				}
			}
		})
	}
	for _, s := range stored {
		work <- s
	}
	close(work)
	wg.Wait()
	return lost
}

func readOne(client *http.Client, base, id string, p patient) string {
	req, _ := http.NewRequest(http.MethodGet, base+"/patients/"+id, nil)
	tok, err := envoytest.TenantToken(p.Tenant)
	if err != nil {
		return err.Error()
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := client.Do(req)
	if err != nil {
		return "transient: " + err.Error()
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	switch {
	case err != nil:
		return "transient: " + err.Error()
	case resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusGatewayTimeout:
		return fmt.Sprintf("transient %d: %.200s", resp.StatusCode, b)
	case resp.StatusCode != http.StatusOK:
		return fmt.Sprintf("status %d: %.200s", resp.StatusCode, b)
	}
	return checkRecord(string(b), p)
}

// checkKeysAgree asks both replicas for the key of every id that exists in the store: they
// must return the same bytes (no id ever got two keys). It returns the existing ids and the
// number that disagree.
func (c *cluster) checkKeysAgree(t *testing.T, st *dynamodb.Store, tenants []string) (existing []string, disagree int) {
	t.Helper()
	ctx := context.Background()
	for _, tn := range tenants {
		id := "tenant-" + tn
		if _, err := st.Get(ctx, id); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			t.Fatalf("store read %s: %v", id, err)
		}
		existing = append(existing, id)
		var keys []string
		for _, r := range c.reps {
			k, _, status, err := r.key(ctx, id)
			if status != http.StatusOK {
				t.Errorf("invariant 2: %s: key %s: %d %v", r.name, id, status, err)
			}
			keys = append(keys, k)
		}
		if keys[0] != keys[1] {
			disagree++
			t.Errorf("invariant 2: the replicas hold different keys for %s", id)
		}
	}
	return existing, disagree
}

// waitRepaired is invariant 4: every version of every existing record gets a copy in all three
// regions (in hierarchical mode: the branch key version it is wrapped under does). It returns how long that took and the versions still incomplete at the deadline.
func waitRepaired(t *testing.T, st *dynamodb.Store, ids []string, within time.Duration) (time.Duration, int) {
	t.Helper()
	began := time.Now()
	for {
		incomplete := 0
		var first string
		for _, id := range ids {
			rec, err := st.Get(context.Background(), id)
			if err != nil {
				t.Fatalf("store read %s: %v", id, err)
			}
			for _, v := range rec.Versions {
				copies := len(v.Wrapped)
				if v.IsBranchWrapped() { // hierarchical mode: the branch key version's copies count
					copies = branchCopies(t, st, v.Branch.KeyID, v.Branch.Version)
				}
				if copies < 3 {
					incomplete++
					if first == "" {
						first = fmt.Sprintf("%s v%d has %d copies", id, v.Number, copies)
					}
				}
			}
		}
		if incomplete == 0 {
			return time.Since(began), 0
		}
		if time.Since(began) > within {
			t.Errorf("invariant 4: %d key versions still miss a region's copy %s after the faults (first: %s)", incomplete, within, first)
			return time.Since(began), incomplete
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// branchCopies is how many regions hold version v of branch key id (hierarchical mode).
func branchCopies(t *testing.T, st *dynamodb.Store, id string, v uint32) int {
	t.Helper()
	rec, err := st.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("store read branch key %s: %v", id, err)
	}
	ver, ok := rec.Version(v)
	if !ok {
		return 0
	}
	return len(ver.Wrapped)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
