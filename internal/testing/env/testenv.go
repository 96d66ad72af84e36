package testenv

import (
	"bytes"
	"context"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// Integration marks t as needing real servers. It skips t only under `go test -short`, and
// never in CI (CI set, as .ci/run runs): there a short run fails instead of passing with the
// real-component tests skipped. A missing tool fails the test (see tool), it never skips it.
func Integration(t testing.TB) {
	t.Helper()
	if testing.Short() && os.Getenv("CI") != "" {
		t.Fatal("integration test under -short in CI: CI must run the real-component tests (make test)")
	}
	if testing.Short() {
		t.Skip("integration test: needs real local-kms/dynalite/Envoy (run without -short)")
	}
}

// RepoRoot returns the repository root (the directory holding go.mod).
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("testenv: cannot locate source file")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

// FreePort returns a port that was free on 127.0.0.1 a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ports, err := FreePorts(1)
	if err != nil {
		t.Fatalf("testenv: free port: %v", err)
	}
	return ports[0]
}

// FreePorts returns n distinct ports that were free on 127.0.0.1 a moment ago (all held open
// together, so they differ). It is the one port helper of the rigs; [FreePort] is its form for
// tests.
//
// The ports come from below the kernel's ephemeral range (ip_local_port_range), picked at random
// and checked by binding them: a port from the ephemeral range (what binding port 0 gives) can be
// taken, between this call and the server's own bind, by any outgoing connection on the machine,
// and the tests make thousands (other packages run at the same time; the abuse attackers connect
// from 127.0.0.2 and 127.0.0.3).
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	lo, hi := 10000, ephemeralLow()
	for tries := 0; len(ports) < n; tries++ {
		if tries > 1000 || hi-lo < 1000 {
			// No room below the ephemeral range (or all taken): the kernel's choice.
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return nil, err
			}
			ls = append(ls, l)
			ports = append(ports, l.Addr().(*net.TCPAddr).Port)
			continue
		}
		p := lo + mrand.IntN(hi-lo)
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue // taken: another one
		}
		ls = append(ls, l)
		ports = append(ports, p)
	}
	return ports, nil
}

// ephemeralLow is the first port of the kernel's ephemeral range (32768 when unknown).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= 0 {
		return 32768
	}
	return n
}

// tool finds a binary: the environment variable env, else each candidate path in turn.
func tool(t testing.TB, env, name string, candidates ...string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("testenv: %s=%s: %v", env, p, err)
		}
		return p
	}
	for _, c := range candidates {
		if _, err := os.Stat(c); err == nil {
			return c
		}
	}
	t.Fatalf("testenv: %s not found (looked at %s; set %s or run `make tools`)", name, strings.Join(candidates, ", "), env)
	return ""
}

func gopathBin(t testing.TB) string {
	if gp := os.Getenv("GOPATH"); gp != "" {
		return filepath.Join(strings.Split(gp, string(os.PathListSeparator))[0], "bin")
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		home, _ := os.UserHomeDir()
		return filepath.Join(home, "go", "bin")
	}
	return filepath.Join(strings.TrimSpace(string(out)), "bin")
}

// The emulators' static credentials: local-kms and dynalite accept any, the SDK needs some.
const (
	accessKeyID     = "AKIDLOCAL"
	secretAccessKey = "secretlocal"
)

// AWSEnv is the AWS part of the environment of every process that talks to the emulators
// (the emulators themselves, rkms processes, rkms run in-process): the emulators' static
// credentials, no instance metadata lookups, no shared config or credentials files.
func AWSEnv() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + accessKeyID, "AWS_SECRET_ACCESS_KEY=" + secretAccessKey,
		"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=/nonexistent/rkms-testenv",
		"AWS_SHARED_CREDENTIALS_FILE=/nonexistent/rkms-testenv"}
}

// ProcessEnv is the environment for a child process that talks to the emulators: this
// process's environment without any AWS_* setting (a stray AWS_CA_BUNDLE or profile breaks
// plain-HTTP endpoints) and without the variables named in drop, then [AWSEnv], then extra.
func ProcessEnv(drop []string, extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AWS_") || slices.Contains(drop, k) {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, AWSEnv()...)
	return append(env, extra...)
}

// SetAWSEnv gives this process (for code under test run in-process, such as rkms's Main) the
// environment of [ProcessEnv] for the duration of t: every inherited AWS_* variable unset, then
// [AWSEnv] set. t must not be parallel.
func SetAWSEnv(t testing.TB) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	for _, kv := range AWSEnv() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// AWSConfig returns an aws.Config for the emulators: static credentials, the given region, and no
// shared config files, IMDS or inherited AWS_* environment.
func AWSConfig(t testing.TB, region string) aws.Config {
	t.Helper()
	cfg := aws.Config{
		Region:      region,
		Credentials: aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(accessKeyID, secretAccessKey, "")),
	}
	return cfg
}

// process is one managed child process that can be killed and started again.
type process struct {
	t     testing.TB // for start and stall; nil for a process only launched and stopped (Envoy)
	name  string
	build func() *exec.Cmd // a fresh command each start
	ready func(ctx context.Context) error
	wait  time.Duration // how long launch waits for ready; 0: 30 s
	tee   io.Writer     // also gets the output (nil: none)

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	logs *LockedBuffer
}

func (p *process) start() {
	p.t.Helper()
	if err := p.launch(context.Background(), 3); err != nil {
		p.t.Fatalf("testenv: %s did not become ready: %v\n--- output ---\n%s", p.name, err, p.logs.String())
	}
}

// tryStart makes one attempt and reports whether the process became ready.
func (p *process) tryStart() bool { return p.launch(context.Background(), 1) == nil }

// launch starts the process, making up to attempts tries within p.wait (default 30 s) or until
// ctx is done, and returns once it is ready.
func (p *process) launch(ctx context.Context, attempts int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		// Resume a stalled process instead of starting a second one.
		return p.cmd.Process.Signal(syscall.SIGCONT)
	}
	wait := p.wait
	if wait == 0 {
		wait = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var lastErr error
	for i := 0; i < attempts; i++ {
		cmd := p.build()
		var out io.Writer = p.logs
		if p.tee != nil {
			out = io.MultiWriter(p.logs, p.tee)
		}
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start: %w", err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		if lastErr = waitReady(ctx, p.ready, done); lastErr == nil {
			select {
			case <-done:
				lastErr = fmt.Errorf("%s exited right after the port answered (port taken by another process?)", p.name)
				continue
			case <-time.After(50 * time.Millisecond):
			}
			p.cmd, p.done = cmd, done
			return nil
		}
		kill(cmd, done)
	}
	return lastErr
}

func waitReady(ctx context.Context, ready func(context.Context) error, done <-chan struct{}) error {
	for {
		err := ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("exited early: %w", err)
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func kill(cmd *exec.Cmd, done <-chan struct{}) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
}

func (p *process) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	kill(p.cmd, p.done)
	p.cmd, p.done = nil, nil
}

func (p *process) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

func (p *process) stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	pid := p.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGSTOP)
	// Signal delivery is asynchronous: a request sent right after kill(2) could still be answered.
	// Return only once the kernel reports the process stopped.
	deadline := time.Now().Add(5 * time.Second)
	for !stopped(pid) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if !stopped(pid) {
		p.t.Fatalf("testenv: %s did not stop after SIGSTOP", p.name)
	}
}

// stopped reports whether /proc/PID/stat shows the process in state T (stopped).
func stopped(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses and may contain spaces.
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && (b[i+2] == 'T' || b[i+2] == 't')
}

// Output returns what the process printed so far (bounded), for failure messages.
func (p *process) Output() string { return p.logs.String() }

// awsJSONReady returns a readiness check that proves the port is served by the expected
// AWS-JSON emulator, not by some other process that took the port first: it POSTs target and
// requires a JSON answer containing want. A bare TCP connect is not enough (seen: a port taken by
// another test's gRPC server between FreePort and the emulator's bind).
func awsJSONReady(endpoint, target, contentType, want string) func(context.Context) error {
	client := &http.Client{Timeout: time.Second}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint+"/", strings.NewReader("{}"))
		if err != nil {
			return err
		}
		req.Header.Set("X-Amz-Target", target)
		req.Header.Set("Content-Type", contentType)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if !strings.Contains(string(body), want) {
			return fmt.Errorf("unexpected answer on %s (another process on the port?): %s %.200q", endpoint, resp.Status, body)
		}
		return nil
	}
}
