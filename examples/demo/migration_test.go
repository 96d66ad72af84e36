package demo_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/internal/testing/env"
)

// migrationRecords is how many records the migration test moves (issue 16's acceptance).
const migrationRecords = 100_000

// migrationPage is how many records one read through Envoy returns: about 250 KiB sealed, well
// under Envoy's 1 MiB buffer.
const migrationPage = 500

// TestMigration is the adoption path of an existing database, on the demo (`make demo`: the
// example app, rkms on its embedded defaults, the real Envoy), with the rkms CLI as a user runs
// it:
//
//  1. a plaintext NDJSON export of 100,000 records is sealed in bulk (`rkms seal --server`),
//     loaded into the app as a database load, and read back through Envoy as plaintext;
//  2. the key is rotated, the app's data exported, rewrapped in bulk (`rkms rewrap --server`,
//     through POST /v1/rewrap) and loaded again;
//  3. the old version is retired (min decrypt version), everything still reads back, and a
//     record still under the retired version is refused.
//
// On the way it checks what a hostile client would try: the app's bulk import through Envoy
// never lets plaintext in.
func TestMigration(t *testing.T) {
	testenv.Integration(t)
	d := startDemo(t)
	dir := t.TempDir()

	plain := filepath.Join(dir, "export.ndjson")
	want := writeExport(t, plain, migrationRecords)

	// A client that sends the plaintext export to the app's import route through Envoy is
	// refused: the body is not one JSON document, so rkms cannot encrypt it and fails closed.
	chunk := bytes.Join(want[:10], []byte("\n"))
	if st, body := d.envoy(t, "POST", "/patients/_import", chunk); st < 400 {
		t.Fatalf("plaintext import through Envoy: %d %s", st, body)
	}
	if n := len(d.appExport(t)); n != 0 {
		t.Fatalf("the app holds %d records after a refused import", n)
	}

	// 1. Seal in bulk, load, read back through Envoy.
	sealed := filepath.Join(dir, "sealed.ndjson")
	sum := d.cli(t, "seal", plain, sealed)
	if sum.Records != migrationRecords || sum.Failed != 0 || sum.Fields != 3*migrationRecords {
		t.Fatalf("seal summary: %+v", sum)
	}
	v1 := versionsOf(t, readLines(t, sealed), want)
	d.appImport(t, sealed)
	d.readBack(t, want)

	// 2. Rotate, export, rewrap, load.
	v2 := d.rotate(t)
	if v2 <= v1 {
		t.Fatalf("rotation gave version %d after %d", v2, v1)
	}
	exported := filepath.Join(dir, "exported.ndjson")
	if err := os.WriteFile(exported, bytes.Join(d.appExport(t), []byte("\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	stale := readLines(t, exported)[0] // kept aside under the old version
	rewrapped := filepath.Join(dir, "rewrapped.ndjson")
	sum = d.cli(t, "rewrap", exported, rewrapped)
	if sum.Records != migrationRecords || sum.Failed != 0 || sum.Fields != 3*migrationRecords {
		t.Fatalf("rewrap summary: %+v", sum)
	}
	if got := versionsOf(t, readLines(t, rewrapped), want); got != v2 {
		t.Fatalf("rewrapped under version %d, want %d", got, v2)
	}
	d.appImport(t, rewrapped)
	d.readBack(t, want)
	if log := d.log(t, "rkms.log"); !strings.Contains(log, `"op":"rewrap"`) {
		t.Fatalf("no rewrap audit record in rkms's log")
	}

	// 3. Retire the old version: everything still reads back; the record kept under it is
	// refused, with the documented error.
	d.admin(t, "POST", fmt.Sprintf("/key/min-decrypt-version?id=tenant-acme&version=%d", v2), http.StatusOK)
	d.readBack(t, want)
	staleRec := bytes.Replace(stale, []byte(`{"id":"`), []byte(`{"id":"stale-`), 1)
	d.appPut(t, staleRec)
	var id struct{ ID string }
	if err := json.Unmarshal(staleRec, &id); err != nil {
		t.Fatal(err)
	}
	st, body := d.envoy(t, "GET", "/patients/"+id.ID, nil)
	if st != http.StatusForbidden || !bytes.Contains(body, []byte(`"code":"key_version_retired"`)) {
		t.Fatalf("a record under the retired version: %d %s", st, body)
	}
}

// migrationDemo is a running `bash examples/demo.sh` (run mode).
type migrationDemo struct {
	demo
	envoyURL, appURL, adminURL string
	adminToken, acme           string
	logs                       string
	client                     *http.Client
}

// startDemo builds and starts the demo on free ports and stops it at cleanup.
func startDemo(t *testing.T) *migrationDemo {
	t.Helper()
	root := testenv.RepoRoot(t)
	d := &migrationDemo{demo: demo{root: root, data: filepath.Join(t.TempDir(), "rkms-data"), bin: t.TempDir(), ports: map[int]int{}},
		adminToken: "migration-test-admin-token-0123456789", client: &http.Client{Timeout: time.Minute}}
	d.logs = filepath.Join(d.data, "demo")
	d.env = environ("RKMS_ADMIN_TOKEN", "RKMS_DEMO_DATA", "RKMS_DEMO_BIN", "RKMS_ENVOY")
	byName := map[string]int{}
	for _, p := range defaultPorts {
		got := freePort(t, d.ports)
		d.ports[got] = p.port
		byName[p.env] = got
		d.env = append(d.env, fmt.Sprintf("%s=%d", p.env, got))
	}
	d.env = append(d.env, "RKMS_DEMO_DATA="+d.data, "RKMS_DEMO_BIN="+d.bin, "RKMS_ENVOY="+testenv.EnvoyBin(t),
		"RKMS_ADMIN_TOKEN="+d.adminToken)
	d.envoyURL = fmt.Sprintf("http://127.0.0.1:%d", byName["ENVOY_PORT"])
	d.appURL = fmt.Sprintf("http://127.0.0.1:%d", byName["APP_PORT"])
	d.adminURL = fmt.Sprintf("http://127.0.0.1:%d", byName["RKMS_ADMIN_PORT"])

	cmd := exec.Command("bash", filepath.Join(root, "examples", "demo.sh"))
	cmd.Dir = root
	cmd.Env = d.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	var transcript bytes.Buffer
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			transcript.WriteString(sc.Text() + "\n")
			if sc.Text() == "Press Ctrl-C to stop." {
				ready <- true
			}
		}
		ready <- false
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		checkStopped(t, d.data, d.ports)
	})
	// Bounded: a cold build of the three binaries on a busy two-core machine takes minutes.
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("the demo stopped before it was ready:\n%s\n%s", &transcript, &stderr)
		}
	case <-time.After(6 * time.Minute):
		t.Fatalf("the demo was not ready after 6 minutes:\n%s\n%s", &transcript, &stderr)
	}
	tok, err := exec.Command(filepath.Join(d.bin, "rkms-demo-token"), "mint", "-dir", filepath.Join(d.logs, "jwt"), "acme").Output()
	if err != nil {
		t.Fatalf("rkms-demo-token: %v", err)
	}
	d.acme = strings.TrimSpace(string(tok))
	return d
}

// summary is what the bulk commands write with --summary-json (the fields the test checks).
type summary struct {
	Records int    `json:"records"`
	Written int    `json:"written"`
	Failed  int    `json:"failed"`
	Fields  int    `json:"fields"` // values sealed, opened or rewrapped
	Verb    string `json:"fields_verb"`
}

// cli runs `rkms OP --server` over in to out with the demo's policy and returns its summary.
func (d *migrationDemo) cli(t *testing.T, op, in, out string) summary {
	t.Helper()
	sumFile := out + ".summary.json"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := []string{op, "--config", filepath.Join(d.logs, "rkms.yaml"), "--policy", "patients",
		"--server", d.adminURL, "--format", "ndjson", "--in", in, "--out", out, "--summary-json", sumFile, "--no-progress"}
	if op == "seal" {
		args = append(args, "--key-id", "tenant-acme")
	}
	cmd := exec.CommandContext(ctx, filepath.Join(d.bin, "rkms"), args...)
	cmd.Env = d.env
	start := time.Now()
	msg, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("rkms %s: %v\n%s", op, err, msg)
	}
	t.Logf("rkms %s of %d records: %v (%s)", op, migrationRecords, time.Since(start).Round(time.Millisecond), bytes.TrimSpace(msg))
	b, err := os.ReadFile(sumFile)
	if err != nil {
		t.Fatal(err)
	}
	var s summary
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("summary %s: %v", b, err)
	}
	if s.Records == 0 {
		t.Fatalf("summary without records: %s", b)
	}
	return s
}

// readBack reads every record through Envoy as tenant acme, in pages, and checks that each is
// the original plaintext record, byte for byte.
func (d *migrationDemo) readBack(t *testing.T, want [][]byte) {
	t.Helper()
	start := time.Now()
	got := 0
	for off := 0; off < len(want); off += migrationPage {
		st, body := d.envoy(t, "GET", fmt.Sprintf("/patients?offset=%d&limit=%d", off, migrationPage), nil)
		if st != http.StatusOK {
			t.Fatalf("page at %d: %d %s", off, st, body)
		}
		var page struct{ Items []json.RawMessage }
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatalf("page at %d: %v", off, err)
		}
		for i, rec := range page.Items {
			if !bytes.Equal(rec, want[off+i]) {
				t.Fatalf("record %d through Envoy:\n got %s\nwant %s", off+i, rec, want[off+i])
			}
		}
		got += len(page.Items)
	}
	if got != len(want) {
		t.Fatalf("read %d records through Envoy, want %d", got, len(want))
	}
	t.Logf("read %d records back through Envoy in %v", got, time.Since(start).Round(time.Millisecond))
}

// envoy sends one request through Envoy as tenant acme.
func (d *migrationDemo) envoy(t *testing.T, method, path string, body []byte) (int, []byte) {
	t.Helper()
	return d.do(t, method, d.envoyURL+path, body, "Bearer "+d.acme)
}

// admin calls rkms's admin API and checks the status.
func (d *migrationDemo) admin(t *testing.T, method, path string, want int) []byte {
	t.Helper()
	st, body := d.do(t, method, d.adminURL+path, nil, "Bearer "+d.adminToken)
	if st != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, st, body, want)
	}
	return body
}

// rotate rotates tenant-acme's key through the admin API and returns the new version.
func (d *migrationDemo) rotate(t *testing.T) uint32 {
	t.Helper()
	var r struct{ Version uint32 }
	if err := json.Unmarshal(d.admin(t, "POST", "/key/rotate?id=tenant-acme", http.StatusOK), &r); err != nil || r.Version == 0 {
		t.Fatalf("rotate: %v %+v", err, r)
	}
	return r.Version
}

// appImport loads an NDJSON file into the app directly (a database load), in bodies under the
// app's limit.
func (d *migrationDemo) appImport(t *testing.T, file string) {
	t.Helper()
	lines := readLines(t, file)
	for len(lines) > 0 {
		n := min(len(lines), 10_000)
		st, body := d.do(t, "POST", d.appURL+"/patients/_import", bytes.Join(lines[:n], []byte("\n")), "")
		if st != http.StatusOK {
			t.Fatalf("import: %d %s", st, body)
		}
		lines = lines[n:]
	}
}

// appPut stores one record in the app directly.
func (d *migrationDemo) appPut(t *testing.T, rec []byte) {
	t.Helper()
	if st, body := d.do(t, "POST", d.appURL+"/patients/_import", rec, ""); st != http.StatusOK {
		t.Fatalf("import: %d %s", st, body)
	}
}

// appExport returns every record the app holds, as stored.
func (d *migrationDemo) appExport(t *testing.T) [][]byte {
	t.Helper()
	st, body := d.do(t, "GET", d.appURL+"/patients/_export", nil, "")
	if st != http.StatusOK {
		t.Fatalf("export: %d %s", st, body)
	}
	return bytes.FieldsFunc(body, func(r rune) bool { return r == '\n' })
}

// log returns one of the demo's log files.
func (d *migrationDemo) log(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.logs, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (d *migrationDemo) do(t *testing.T, method, url string, body []byte, auth string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// writeExport writes n plaintext patient records as NDJSON (the app's records: an "id" first)
// and returns their lines.
func writeExport(t *testing.T, file string, n int) [][]byte {
	t.Helper()
	lines := make([][]byte, n)
	var b bytes.Buffer
	for i := range n {
		lines[i] = fmt.Appendf(nil, `{"id":"p%06d","name":"Patient %d","ssn":"%03d-%02d-%04d","contact":{"email":"p%d@example.com","phone":"555-%04d"},"cards":[{"number":"4%015d","exp":"%02d/3%d"}],"visits":%d}`,
			i, i, 100+i%899, 10+i%89, i%10000, i, i%10000, i, 1+i%12, i%10, i%50)
		b.Write(lines[i])
		b.WriteByte('\n')
	}
	if err := os.WriteFile(file, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return lines
}

func readLines(t *testing.T, file string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.FieldsFunc(b, func(r rune) bool { return r == '\n' })
}

// versionsOf checks that every record of lines is its plaintext record with the three tagged
// fields replaced by tenant-acme ciphertexts (nothing else changed, no plaintext left), all under
// one key version, which it returns.
func versionsOf(t *testing.T, lines, plain [][]byte) uint32 {
	t.Helper()
	if len(lines) != len(plain) {
		t.Fatalf("%d records, want %d", len(lines), len(plain))
	}
	var version uint32
	for i, line := range lines {
		var rec, orig struct {
			ID, Name string
			SSN      string `json:"ssn"`
			Contact  struct{ Email, Phone string }
			Cards    []struct{ Number, Exp string }
			Visits   int
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if err := json.Unmarshal(plain[i], &orig); err != nil {
			t.Fatal(err)
		}
		if rec.ID != orig.ID || rec.Name != orig.Name || rec.Contact.Phone != orig.Contact.Phone || rec.Visits != orig.Visits ||
			len(rec.Cards) != 1 || rec.Cards[0].Exp != orig.Cards[0].Exp {
			t.Fatalf("line %d: an untagged member changed: %s", i+1, line)
		}
		for _, ct := range []string{rec.SSN, rec.Contact.Email, rec.Cards[0].Number} {
			h, err := envelope.Parse([]byte(ct))
			if err != nil {
				t.Fatalf("line %d: a tagged field is not a ciphertext: %v", i+1, err)
			}
			if h.KeyID != "tenant-acme" || (version != 0 && h.KeyVersion != version) {
				t.Fatalf("line %d: ciphertext under %s version %d, want tenant-acme version %d", i+1, h.KeyID, h.KeyVersion, version)
			}
			version = h.KeyVersion
		}
	}
	return version
}
