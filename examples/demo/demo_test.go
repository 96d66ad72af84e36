// Package demo_test runs the `make demo` walkthrough (examples/demo.sh check) with the real
// Envoy, rkms and the example app on free loopback ports, and checks that examples/README.md
// shows exactly the commands it runs and what they printed.
package demo_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
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
// ADMIN_TOKEN=, EVE=, seventeen curl calls and rkms policy test.
const steps = 24

// TestDemoCheck runs the walkthrough twice on one data directory with a rotation of tenant-acme's
// key in between, as a user who runs `make demo` again after trying the admin API would: the
// check must not depend on the key versions the data directory holds (issue 15, defect 2).
// Both transcripts must match examples/README.md once the versions are made relative.
func TestDemoCheck(t *testing.T) {
	testenv.Integration(t)
	envoy := testenv.EnvoyBin(t)
	root := testenv.RepoRoot(t)
	d := demo{root: root, data: filepath.Join(t.TempDir(), "rkms-data"), bin: t.TempDir(), ports: map[int]int{}}

	d.env = environ("RKMS_ADMIN_TOKEN", "RKMS_DEMO_DATA", "RKMS_DEMO_BIN", "RKMS_ENVOY")
	for _, p := range defaultPorts {
		got := freePort(t, d.ports)
		d.ports[got] = p.port
		if p.env == "RKMS_ADMIN_PORT" {
			d.adminPort = got
		}
		d.env = append(d.env, fmt.Sprintf("%s=%d", p.env, got))
	}
	d.env = append(d.env, "RKMS_DEMO_DATA="+d.data, "RKMS_DEMO_BIN="+d.bin, "RKMS_ENVOY="+envoy)

	readme, err := os.ReadFile(filepath.Join(root, "examples", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	first := d.check(t)
	compareREADME(t, readme, first, d)
	v := d.rotate(t)
	t.Logf("rotated tenant-acme to version %d between the runs", v)
	second := d.check(t)
	compareREADME(t, readme, second, d)
}

// demo is one demo setup: its data and binary directories, its environment and its ports (the
// test's port -> the README's).
type demo struct {
	root, data, bin string
	env             []string
	ports           map[int]int
	adminPort       int
}

// check runs `bash examples/demo.sh check` and returns its stdout.
func (d demo) check(t *testing.T) string {
	t.Helper()
	// Bounded: a cold build of cmd/rkms on a busy two-core machine alone can take minutes.
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(d.root, "examples", "demo.sh"), "check")
	cmd.Dir = d.root
	cmd.Env = d.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// On timeout the script gets SIGTERM, so that its trap stops what it started.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	err := cmd.Run()
	checkStopped(t, d.data, d.ports)
	if err != nil {
		t.Fatalf("demo.sh check: %v\n--- stdout ---\n%s\n--- stderr ---\n%s", err, &stdout, &stderr)
	}
	if !strings.Contains(stdout.String(), "demo check: all steps passed") {
		t.Fatalf("demo.sh check exited 0 without its final line\n%s", &stdout)
	}
	return stdout.String()
}

// rotate starts the rkms the demo built, on the configuration it generated, rotates
// tenant-acme's key through the admin API (POST /key/rotate, as examples/README.md shows) and
// stops it. It returns the new version.
func (d demo) rotate(t *testing.T) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(d.bin, "rkms"), "serve", "--config", filepath.Join(d.data, "demo", "rkms.yaml"))
	cmd.Dir = d.root
	cmd.Env = d.env
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	base := fmt.Sprintf("http://127.0.0.1:%d", d.adminPort)
	for ready := false; !ready; {
		if ctx.Err() != nil {
			t.Fatalf("rkms not ready: %s", &log)
		}
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			ready = resp.StatusCode == http.StatusOK
		}
		if !ready {
			time.Sleep(100 * time.Millisecond)
		}
	}
	token, err := os.ReadFile(filepath.Join(d.data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/key/rotate?id=tenant-acme", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		ID      string `json:"id"`
		Version int    `json:"version"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusOK || got.ID != "tenant-acme" || got.Version < 2 {
		t.Fatalf("POST /key/rotate: %d %+v %v\n%s", resp.StatusCode, got, err, &log)
	}
	return got.Version
}

// compareREADME checks that examples/README.md shows every command of the transcript out with
// what it printed (normalized), and runs every curl command it shows.
func compareREADME(t *testing.T, readme []byte, out string, d demo) {
	t.Helper()
	blocks := transcript(out)
	if len(blocks) != steps {
		t.Fatalf("the check ran %d commands, want %d:\n%s", len(blocks), steps, out)
	}
	n := normalizer{ports: d.ports, data: d.data, base: firstVersion(t, out)}
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
// id "tenant-acme", key version), data keys replaced by a placeholder, and key versions counted
// from 1 at base (the version of the run's first ciphertext), as on a fresh data directory.
type normalizer struct {
	ports map[int]int
	data  string
	base  uint32
}

// acmeHeader is how long the header of a tenant-acme ciphertext is: format, mode, key id length,
// the 11 bytes of the key id and the 4-byte version (envelope/FORMAT.md), 24 base64 characters.
const acmeHeader = 3 + len("tenant-acme") + 4

// headerVersion returns the key version in the header of the tenant-acme ciphertext whose first
// 24 base64url characters are h.
func headerVersion(h string) (uint32, bool) {
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil || len(b) != acmeHeader || b[2] != byte(len("tenant-acme")-1) || string(b[3:14]) != "tenant-acme" {
		return 0, false
	}
	return binary.BigEndian.Uint32(b[14:]), true
}

// firstVersion returns the key version of the first ciphertext in the transcript.
func firstVersion(t *testing.T, out string) uint32 {
	t.Helper()
	m := ciphertext.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no ciphertext in the transcript:\n%s", out)
	}
	v, ok := headerVersion(m[1])
	if !ok || v < 1 {
		t.Fatalf("the first ciphertext's header %s is not tenant-acme's with a version >= 1", m[1])
	}
	return v
}

// relative returns the version v counted from 1 at n.base.
func (n normalizer) relative(v uint32) uint32 { return v - n.base + 1 }

var (
	ciphertext = regexp.MustCompile(`rkms:([A-Za-z0-9_-]{1,24})[A-Za-z0-9_-]*`)
	dataKey    = regexp.MustCompile(`"key":"[A-Za-z0-9+/]{43}="`)
	keyVersion = regexp.MustCompile(`("id":"tenant-acme",(?:"key":"[^"]*",)?"version":)([0-9]+)`)
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
	s = ciphertext.ReplaceAllStringFunc(s, func(m string) string {
		h := ciphertext.FindStringSubmatch(m)[1]
		if v, ok := headerVersion(h); ok {
			b, _ := base64.RawURLEncoding.DecodeString(h)
			binary.BigEndian.PutUint32(b[14:], n.relative(v))
			h = base64.RawURLEncoding.EncodeToString(b)
		}
		return "rkms:" + h + "..."
	})
	s = keyVersion.ReplaceAllStringFunc(s, func(m string) string {
		sub := keyVersion.FindStringSubmatch(m)
		v, _ := strconv.ParseUint(sub[2], 10, 32)
		return sub[1] + strconv.FormatUint(uint64(n.relative(uint32(v))), 10)
	})
	return dataKey.ReplaceAllString(s, `"key":"<base64 of 32 bytes>"`)
}

// TestNormalizeVersions: the normalizer counts key versions from the run's first one, in
// ciphertext headers and in the admin API's answers, so that a run on a data directory with
// rotated keys reads like the README's fresh run.
func TestNormalizeVersions(t *testing.T) {
	// Headers of tenant-acme ciphertexts (randomized) under versions 1, 2, 3 and 4.
	const v1, v2, v3, v4 = "AQEKdGVuYW50LWFjbWUAAAAB", "AQEKdGVuYW50LWFjbWUAAAAC", "AQEKdGVuYW50LWFjbWUAAAAD", "AQEKdGVuYW50LWFjbWUAAAAE"
	for _, tt := range []struct {
		name, out, in, want string
	}{
		{"fresh", `"ssn":"rkms:` + v1 + `xyz"`, `"rkms:` + v2 + `abc" {"id":"tenant-acme","version":2}`,
			`"rkms:` + v2 + `..." {"id":"tenant-acme","version":2}`},
		{"rotated twice before", `"ssn":"rkms:` + v3 + `xyz"`, `"rkms:` + v4 + `abc" {"id":"tenant-acme","key":"` + strings.Repeat("A", 43) + `=","version":3}`,
			`"rkms:` + v2 + `..." {"id":"tenant-acme","key":"<base64 of 32 bytes>","version":1}`},
		{"other numbers untouched", `"rkms:` + v3 + `x"`, `{"id":"3","version":3}`, `{"id":"3","version":3}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := normalizer{data: "/no/such/dir", base: firstVersion(t, tt.out)}
			if got := n.normalize(tt.in); got != tt.want {
				t.Errorf("normalize(%s)\n got %s\nwant %s", tt.in, got, tt.want)
			}
		})
	}
}
