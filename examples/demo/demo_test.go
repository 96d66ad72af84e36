// Package demo_test runs the `make demo` walkthrough (examples/demo.sh check) with the real
// Envoy, rkms and the example app on free loopback ports, and checks that examples/README.md
// shows exactly the commands it runs and what they printed.
package demo_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rkms/rkms/internal/testing/env"
)

// defaultPorts are the ports examples/demo.sh uses when its environment does not override them,
// which are the ones examples/README.md shows.
var defaultPorts = []struct {
	env  string
	port int
}{
	{"APP_PORT", 8000},
	{"ENVOY_PORT", 10000},
	{"ENVOY_ADMIN_PORT", 9901},
	{"RKMS_ADMIN_PORT", 8080},
	{"RKMS_EXTPROC_PORT", 50051},
}

// steps is how many commands the walkthrough runs: PATIENT=, TOKEN_ACME=, TOKEN_GLOBEX=, FORGED=,
// ADMIN_TOKEN=, EVE=, thirteen curl calls and rkms policy test.
const steps = 20

func TestDemoCheck(t *testing.T) {
	testenv.Integration(t)
	envoy := testenv.EnvoyBin(t)
	root := testenv.RepoRoot(t)
	data := filepath.Join(t.TempDir(), "rkms-data")
	bin := t.TempDir()

	env := environ("RKMS_ADMIN_TOKEN", "RKMS_DEMO_DATA", "RKMS_DEMO_BIN", "RKMS_ENVOY")
	ports := map[int]int{} // the test's port -> the README's
	for _, p := range defaultPorts {
		got := freePort(t, ports)
		ports[got] = p.port
		env = append(env, fmt.Sprintf("%s=%d", p.env, got))
	}
	env = append(env, "RKMS_DEMO_DATA="+data, "RKMS_DEMO_BIN="+bin, "RKMS_ENVOY="+envoy)

	// Bounded: a cold build of cmd/rkms on a busy two-core machine alone can take minutes.
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "examples", "demo.sh"), "check")
	cmd.Dir = root
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// On timeout the script gets SIGTERM, so that its trap stops what it started.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	err := cmd.Run()
	checkStopped(t, data, ports)
	if err != nil {
		t.Fatalf("demo.sh check: %v\n--- stdout ---\n%s\n--- stderr ---\n%s", err, &stdout, &stderr)
	}
	if !strings.Contains(stdout.String(), "demo check: all steps passed") {
		t.Fatalf("demo.sh check exited 0 without its final line\n%s", &stdout)
	}

	readme, err := os.ReadFile(filepath.Join(root, "examples", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := transcript(stdout.String())
	if len(blocks) != steps {
		t.Fatalf("the check ran %d commands, want %d:\n%s", len(blocks), steps, &stdout)
	}
	n := normalizer{ports: ports, data: data}
	ran := map[string]bool{}
	for _, b := range blocks {
		b = n.normalize(b)
		ran[strings.SplitN(b, "\n", 2)[0]] = true
		if !bytes.Contains(readme, []byte(b)) {
			t.Errorf("examples/README.md does not show this step as it ran (ports, data dir, ciphertexts and keys normalized):\n%s", b)
		}
	}
	for _, line := range strings.Split(string(readme), "\n") {
		if strings.HasPrefix(line, "$ curl ") && !ran[line] {
			t.Errorf("examples/README.md shows a command the check does not run:\n%s", line)
		}
	}
}

// environ returns the process environment without the variables the demo reads from it and
// without the ones named.
func environ(drop ...string) []string {
	var env []string
outer:
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		for _, p := range defaultPorts {
			if name == p.env {
				continue outer
			}
		}
		for _, d := range drop {
			if name == d {
				continue outer
			}
		}
		env = append(env, kv)
	}
	return env
}

// freePort returns a free loopback port not already in taken and not one of the defaults (which
// would make the normalization of the transcript ambiguous).
func freePort(t *testing.T, taken map[int]int) int {
	t.Helper()
	for {
		p := testenv.FreePort(t)
		_, dup := taken[p]
		def := false
		for _, d := range defaultPorts {
			def = def || d.port == p
		}
		if !dup && !def {
			return p
		}
	}
}

// checkStopped fails t if a process the demo started outlived it (and kills it), or if one of
// its ports still answers.
func checkStopped(t *testing.T, data string, ports map[int]int) {
	t.Helper()
	pids, err := os.ReadFile(filepath.Join(data, "demo", "pids"))
	if err != nil {
		t.Errorf("the demo wrote no pid file: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(pids)), "\n") {
		name, field, ok := strings.Cut(line, " ")
		pid, err := strconv.Atoi(field)
		if !ok || err != nil {
			continue
		}
		if err := syscall.Kill(pid, 0); err == nil || !errors.Is(err, syscall.ESRCH) {
			t.Errorf("%s (pid %d) still runs after the demo ended", name, pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	for p := range ports {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), time.Second)
		if err == nil {
			c.Close()
			t.Errorf("127.0.0.1:%d still answers after the demo ended", p)
		}
	}
}

// transcript splits the check's output into one block per command: the "$ command" line and
// what the command printed, up to the script's own next line ("ok: ...", "== ...", "demo...").
func transcript(out string) []string {
	var blocks []string
	var cur []string
	flush := func() {
		for len(cur) > 0 && cur[len(cur)-1] == "" {
			cur = cur[:len(cur)-1]
		}
		if len(cur) > 0 {
			blocks = append(blocks, strings.Join(cur, "\n"))
		}
		cur = nil
	}
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "$ "):
			flush()
			cur = []string{line}
		case strings.HasPrefix(line, "ok: "), strings.HasPrefix(line, "== "), strings.HasPrefix(line, "demo"):
			flush()
		case cur != nil:
			cur = append(cur, line)
		}
	}
	flush()
	return blocks
}

// normalizer rewrites a transcript block into the form examples/README.md shows: default ports,
// the default data directory, ciphertexts cut after their 24-character header (format, mode, key
// id "tenant-acme", key version), and data keys replaced by a placeholder.
type normalizer struct {
	ports map[int]int
	data  string
}

var (
	ciphertext = regexp.MustCompile(`rkms:([A-Za-z0-9_-]{1,24})[A-Za-z0-9_-]*`)
	dataKey    = regexp.MustCompile(`"key":"[A-Za-z0-9+/]{43}="`)
	loopback   = regexp.MustCompile(`127\.0\.0\.1:([0-9]+)`)
)

func (n normalizer) normalize(s string) string {
	s = strings.ReplaceAll(s, n.data, "rkms-data")
	s = loopback.ReplaceAllStringFunc(s, func(m string) string {
		p, _ := strconv.Atoi(strings.TrimPrefix(m, "127.0.0.1:"))
		if d, ok := n.ports[p]; ok {
			return "127.0.0.1:" + strconv.Itoa(d)
		}
		return m
	})
	s = ciphertext.ReplaceAllString(s, "rkms:$1...")
	return dataKey.ReplaceAllString(s, `"key":"<base64 of 32 bytes>"`)
}
