package chaos

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rkms/rkms/internal/testing/env"
)

var (
	phaseFlag  = flag.Duration("chaos.phase", 3*time.Second, "time under each fault, and the observation window after it")
	rateFlag   = flag.Int("chaos.rate", 60, "requests per second offered to Envoy")
	reportFlag = flag.String("chaos.report", "", "also write the Markdown report to this file")
	idsFlag    = flag.Int("chaos.ids", 1000, "key ids created concurrently by TestConcurrentCreate")
	modeFlag   = flag.String("chaos.mode", "direct", "kms.mode of every replica: direct or hierarchical")
)

const adminToken = "chaos-admin-token-0123456789"

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
	buildOut  []byte
)

func TestMain(m *testing.M) {
	if spec := os.Getenv(attackEnv); spec != "" { // an attacker child of TestAbuse (attacker_test.go)
		os.Exit(attackerMain(spec))
	}
	if os.Getenv(abuseAppEnv) != "" { // the app of an abuse stack (abuse_test.go)
		os.Exit(abuseAppMain())
	}
	flag.Parse()
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// rkmsBinary builds ./cmd/rkms once per test binary and returns its path.
func rkmsBinary(t *testing.T) string {
	t.Helper()
	root := testenv.RepoRoot(t)
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "rkms-chaos-bin-")
		if buildErr != nil {
			return
		}
		// Bounded: a cold build on a busy two-core machine can take minutes.
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o",
			filepath.Join(buildDir, "rkms"), "./cmd/rkms")
		cmd.Dir = root
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("build ./cmd/rkms: %v\n%s", buildErr, buildOut)
	}
	return filepath.Join(buildDir, "rkms")
}

// backend is the shared key service: three local-kms regions and one dynalite.
type backend struct {
	kms []*testenv.KMS
	db  *testenv.Dynalite
}

func startBackend(t *testing.T) *backend {
	t.Helper()
	b := &backend{db: testenv.StartDynalite(t)}
	for _, r := range []string{"us-east-1", "us-west-2", "eu-west-1"} {
		b.kms = append(b.kms, testenv.StartKMS(t, r))
	}
	return b
}

// replicaOptions are the settings of one rkms replica that tests vary.
type replicaOptions struct {
	cacheTTL time.Duration
	warmup   bool
	policies string   // YAML of the policies: list, indented by two spaces
	extproc  string   // more extproc settings, as flow-map entries ("k: v, k2: v2")
	kms      string   // more kms settings: YAML lines, each indented by two spaces
	env      []string // more environment variables of the process (KEY=value)
}

// replica is one `rkms serve` process, killed and restarted by the tests.
type replica struct {
	t        *testing.T
	name     string
	bin      string
	cfg      string
	dir      string
	admin    string // host:port
	extproc  int
	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{}
	logs     *testenv.LockedBuffer
	env      []string // beyond processEnv
	runs     int
	logsPast []string // output of earlier runs
}

func (b *backend) newReplica(t *testing.T, name string, o replicaOptions) *replica {
	t.Helper()
	dir := t.TempDir()
	r := &replica{t: t, name: name, bin: rkmsBinary(t), dir: dir, extproc: testenv.FreePort(t), env: o.env}
	r.admin = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	var regions strings.Builder
	for _, k := range b.kms {
		fmt.Fprintf(&regions, "    - {name: %s, key_id: %q, endpoint: %q}\n", k.Region, k.KeyARN, k.Endpoint)
	}
	cfg := fmt.Sprintf(`data_dir: %[1]s/data
log: {level: info, format: json}
admin: {listen: %[2]s, grpc_listen: "", token_file: %[1]s/token}
extproc: {listen: 127.0.0.1:%[3]d, key_timeout: 1500ms%[8]s}
kms:
  provider: aws%[9]s
  mode: %[10]s
  min_regions: 2
  timeout: 500ms
  breaker_threshold: 3
  breaker_cooldown: 1s
  repair_interval: 2s
  regions:
%[4]s
store:
  type: dynamodb
  dynamodb: {table: rkms_keys, region: us-east-1, endpoint: %[5]q, create_table: true, timeout: 1s}
cache:
  ttl: %[6]s
  max_keys: 100000
  max_stale: 10m
  warmup: {enabled: %[7]t, max_keys: 10000, timeout: 30s, save_interval: 1s}
`, dir, r.admin, r.extproc, regions.String(), b.db.Endpoint, o.cacheTTL, o.warmup, prefixed(", ", o.extproc), prefixed("\n", strings.TrimRight(o.kms, "\n")), *modeFlag)
	if o.policies != "" {
		cfg += "policies:\n" + o.policies
	}
	r.cfg = filepath.Join(dir, "rkms.yaml")
	if err := os.WriteFile(r.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.kill)
	return r
}

// prefixed is s after p, or "" when s is empty.
func prefixed(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}

// start runs the process and waits until its admin API answers /healthz (not /readyz: a
// warm-up may still be running; see waitReady).
func (r *replica) start() {
	r.t.Helper()
	r.mu.Lock()
	if r.cmd != nil {
		r.mu.Unlock()
		r.t.Fatalf("%s: already running", r.name)
	}
	if r.logs != nil {
		r.logsPast = append(r.logsPast, r.logs.String())
	}
	r.logs = &testenv.LockedBuffer{Limit: 8 << 20} // the last 8 MiB of output
	cmd := exec.Command(r.bin, "serve", "--config", r.cfg)
	cmd.Dir = r.dir
	cmd.Env = append(processEnv(), r.env...)
	cmd.Stdout, cmd.Stderr = r.logs, r.logs
	if err := cmd.Start(); err != nil {
		r.mu.Unlock()
		r.t.Fatalf("%s: start: %v", r.name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	r.cmd, r.exited = cmd, exited
	r.runs++
	r.mu.Unlock()

	deadline := time.Now().Add(60 * time.Second)
	for !r.answers("/healthz") {
		select {
		case <-exited:
			r.t.Fatalf("%s exited at start:\n%s", r.name, r.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: admin API not up after 60s:\n%s", r.name, r.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitReady waits until /readyz says 200 (warm-up done, store and regions reachable).
func (r *replica) waitReady(timeout time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for !r.answers("/readyz") {
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: not ready after %s:\n%s", r.name, timeout, r.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *replica) answers(path string) bool {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + r.admin + path)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// kill sends SIGKILL (a crash: nothing is flushed) and waits for the process to go. Idempotent.
func (r *replica) kill() { r.signal(syscall.SIGKILL) }

func (r *replica) signal(sig syscall.Signal) {
	r.mu.Lock()
	cmd, exited := r.cmd, r.exited
	r.cmd = nil
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// output is everything the replica printed, over all its runs.
func (r *replica) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := strings.Join(r.logsPast, "")
	if r.logs != nil {
		out += r.logs.String()
	}
	return out
}

// key asks the admin API for id's current key (creating it if absent) and returns its base64
// bytes and version, or the HTTP status on failure.
func (r *replica) key(ctx context.Context, id string) (key string, version uint32, status int, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.admin+"/key?id="+id, nil)
	if err != nil {
		return "", 0, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := adminClient.Do(req)
	if err != nil {
		return "", 0, 0, err
	}
	defer resp.Body.Close()
	var kr struct {
		Key     string `json:"key"`
		Version uint32 `json:"version"`
	}
	if resp.StatusCode != http.StatusOK {
		return "", 0, resp.StatusCode, nil
	}
	if err := json.NewDecoder(resp.Body).Decode(&kr); err != nil {
		return "", 0, resp.StatusCode, err
	}
	return kr.Key, kr.Version, resp.StatusCode, nil
}

var adminClient = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
	MaxIdleConnsPerHost: 32, DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}}

// logLines returns the JSON log records of the replica whose msg is msg.
func (r *replica) logLines(msg string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(r.output(), "\n") {
		if !strings.Contains(line, `"msg":"`+msg+`"`) {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// processEnv is the environment of an rkms process: the emulators' (testenv.ProcessEnv) and
// the admin token.
func processEnv() []string {
	return testenv.ProcessEnv([]string{"RKMS_ADMIN_TOKEN"}, "RKMS_ADMIN_TOKEN="+adminToken)
}
