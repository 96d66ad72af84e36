package app

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/internal/testing/envoytest"
)

// The streaming acceptance run (README.md, "Streaming routes"; figures in BENCHMARKS.md): an
// NDJSON import sealed on the way in and an export opened on the way out, through the real
// Envoy on ingress.yaml's /imports and /exports, with `rkms serve` in its own process (built
// without -race) whose peak RSS (VmHWM) must stay under its idle RSS + 64 MiB. The size is
// RKMS_STREAM_BYTES (default 20 MB; `make stream-big` runs 200 MB and 1 GiB).

const streamPolicies = `policies:
  - name: imports
    key_id: "tenant-{jwt:tenant}"
    max_stream_bytes: 4294967296
    request:
      stream: true
      encrypt: [$.ssn, $.email, $.card, $.dob]
  - name: exports
    key_id: "tenant-{jwt:tenant}"
    decrypt_only: true
    max_stream_bytes: 4294967296
    response:
      stream: true
      decrypt: [$.ssn, $.email, $.card, $.dob]
`

// streamLine is line i: four tagged values marked with '#', a character no ciphertext holds,
// and an untagged note that brings the line to about 256 bytes.
func streamLine(i int) string {
	return fmt.Sprintf(`{"id":"%d","ssn":"SSN#%07d","email":"mail#%07d@example.com","card":"CARD#%07d","dob":"DOB#%07d","note":"%s"}`+"\n",
		i, i, i, i, i, strings.Repeat("n", 120))
}

// lineSource yields streamLine(0..) until size bytes have been produced (whole lines).
type lineSource struct {
	size, sent int64
	i          int
	buf        []byte
}

func (r *lineSource) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.sent >= r.size {
			return 0, io.EOF
		}
		r.buf = append(r.buf[:0], streamLine(r.i)...)
		r.i++
		r.sent += int64(len(r.buf))
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// sealedStore is the application: an import is read as it streams, checked for plaintext
// (the '#' markers), and its first lines kept; an export answers ?lines=N with the kept lines,
// cycled.
type sealedStore struct {
	mu        sync.Mutex
	kept      [][]byte
	total     int64
	lines     int64
	plaintext bool
	err       error
}

func (a *sealedStore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		br := bufio.NewReaderSize(r.Body, 1<<20)
		var total, lines int64
		plain := false
		var err error
		for {
			var line []byte
			line, err = br.ReadSlice('\n')
			total += int64(len(line))
			if len(line) > 0 && line[len(line)-1] == '\n' {
				lines++
				if bytes.IndexByte(line, '#') >= 0 {
					plain = true
				}
				a.mu.Lock()
				if len(a.kept) < 1000 {
					a.kept = append(a.kept, bytes.Clone(line))
				}
				a.mu.Unlock()
			}
			if err == bufio.ErrBufferFull {
				continue
			}
			if err != nil {
				break
			}
		}
		a.mu.Lock()
		a.total, a.lines, a.plaintext = total, lines, plain
		if err != io.EOF {
			a.err = err
		}
		a.mu.Unlock()
		w.Header().Set("content-type", "application/json")
		fmt.Fprintf(w, `{"lines":%d}`, lines)
		return
	}
	n, _ := strconv.ParseInt(r.URL.Query().Get("lines"), 10, 64)
	a.mu.Lock()
	kept := a.kept
	a.mu.Unlock()
	w.Header().Set("content-type", "application/x-ndjson")
	bw := bufio.NewWriterSize(w, 256<<10)
	for i := int64(0); i < n && len(kept) > 0; i++ {
		if _, err := bw.Write(kept[i%int64(len(kept))]); err != nil {
			return
		}
	}
	_ = bw.Flush()
}

// procStatus reads a field of /proc/PID/status in bytes (VmRSS, VmHWM).
func procStatus(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == field+":" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

func streamBytes(t *testing.T) int64 {
	if v := os.Getenv("RKMS_STREAM_BYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			t.Fatalf("RKMS_STREAM_BYTES=%q: want a positive byte count", v)
		}
		return n
	}
	return 20 << 20
}

func TestStreamRSS(t *testing.T) {
	testenv.Integration(t)
	size := streamBytes(t)
	long := size > 200<<20 // past the shipped timeouts: raised for this run (README.md)
	dir := t.TempDir()
	bin := filepath.Join(dir, "rkms")
	build := exec.Command("go", "build", "-o", bin, "./cmd/rkms")
	build.Dir = testenv.RepoRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build rkms: %v\n%s", err, out)
	}
	extPort, adminPort := testenv.FreePort(t), testenv.FreePort(t)
	timeouts := ""
	if long {
		timeouts = "stream_timeout: 30m, "
	}
	cfg := writeConfig(t, dir, fmt.Sprintf(`data_dir: %[1]s/data
admin: {listen: 127.0.0.1:%[2]d, grpc_listen: "", token_file: %[1]s/token}
extproc: {%[4]slisten: 127.0.0.1:%[3]d}
store: {type: memory}
log: {level: warn}
%[5]s`, dir, adminPort, extPort, timeouts, streamPolicies))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "serve", "--config", cfg)
	cmd.Env = append(os.Environ(), "RKMS_ADMIN_TOKEN=stream-rss-token-0123456789")
	logs := &testenv.LockedBuffer{Limit: 1 << 20}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	waitListening(t, fmt.Sprintf("127.0.0.1:%d", extPort), logs)

	app := &sealedStore{}
	appPort := serveApp(t, app)
	listener := testenv.FreePort(t)
	yml := ingressYAML(t, listener, appPort, extPort)
	if long {
		yml = strings.ReplaceAll(yml, "request_timeout: 30s", "request_timeout: 1800s")
		yml = strings.ReplaceAll(yml, "route: {cluster: app, timeout: 25s}", "route: {cluster: app, timeout: 1800s}")
	}
	e := testenv.StartEnvoy(t, yml)
	client := &http.Client{}
	token := "Bearer " + envoytest.Token(t, "acme")
	do := func(method, path string, body io.Reader) (*http.Response, error) {
		req, err := http.NewRequest(method, fmt.Sprintf("http://127.0.0.1:%d%s", listener, path), body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("content-type", "application/x-ndjson")
		req.Header.Set("authorization", token)
		return client.Do(req)
	}

	// Warm up (the tenant's key is created) and take the idle figure.
	resp, err := do(http.MethodPost, "/imports", &lineSource{size: 64 << 10})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("warm-up import: %v %v\n%s", resp, err, logs)
	}
	resp.Body.Close()
	time.Sleep(200 * time.Millisecond)
	pid, envoyPid := cmd.Process.Pid, e.Pid()
	idle, envoyIdle := procStatus(t, pid, "VmRSS"), procStatus(t, envoyPid, "VmRSS")

	start := time.Now()
	resp, err = do(http.MethodPost, "/imports", &lineSource{size: size})
	if err != nil {
		t.Fatalf("import: %v\n%s", err, logs)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	importTime := time.Since(start)
	app.mu.Lock()
	total, lines, plain, appErr := app.total, app.lines, app.plaintext, app.err
	app.mu.Unlock()
	if resp.StatusCode != 200 || appErr != nil || plain || total < size {
		t.Fatalf("import: status %d %s; app read %d bytes (%d lines), error %v, plaintext %v\n%s", resp.StatusCode, body, total, lines, appErr, plain, logs)
	}
	afterImport := procStatus(t, pid, "VmHWM")

	start = time.Now()
	resp, err = do(http.MethodGet, "/exports?lines="+strconv.FormatInt(lines, 10), nil)
	if err != nil {
		t.Fatal(err)
	}
	var got, gotLines, badLines int64
	br := bufio.NewReaderSize(resp.Body, 1<<20)
	for {
		line, err := br.ReadSlice('\n')
		got += int64(len(line))
		if err == nil {
			gotLines++
		}
		if len(line) > 0 && (bytes.Count(line, []byte("#")) != 4 || !bytes.HasPrefix(line, []byte(`{"id":"`))) {
			badLines++
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err != io.EOF {
				t.Fatalf("export: %v after %d bytes\n%s", err, got, logs)
			}
			break
		}
	}
	resp.Body.Close()
	exportTime := time.Since(start)
	if resp.StatusCode != 200 || gotLines != lines || badLines > 0 {
		t.Fatalf("export: status %d, %d bytes, %d lines of %d, %d not opened\n%s", resp.StatusCode, got, gotLines, lines, badLines, logs)
	}
	peak := procStatus(t, pid, "VmHWM")
	envoyPeak := procStatus(t, envoyPid, "VmHWM")
	mb := func(n int64) float64 { return float64(n) / (1 << 20) }
	t.Logf("import %d MiB of NDJSON (%d lines, %d MiB sealed at the app) in %.1fs (%.0f MB/s); export %d MiB in %.1fs (%.0f MB/s)", size>>20, lines, total>>20,
		importTime.Seconds(), float64(size)/1e6/importTime.Seconds(), got>>20, exportTime.Seconds(), float64(got)/1e6/exportTime.Seconds())
	t.Logf("rkms RSS: idle %.1f MiB, peak after import %.1f MiB, peak %.1f MiB (+%.1f MiB); Envoy RSS idle %.1f MiB, peak %.1f MiB",
		mb(idle), mb(afterImport), mb(peak), mb(peak-idle), mb(envoyIdle), mb(envoyPeak))
	if peak-idle >= 64<<20 {
		t.Errorf("rkms peak RSS %.1f MiB is %.1f MiB over idle: want under 64 MiB", mb(peak), mb(peak-idle))
	}
}

// waitListening waits until addr accepts connections.
func waitListening(t *testing.T, addr string, logs fmt.Stringer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("rkms did not listen on %s\n%s", addr, logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
