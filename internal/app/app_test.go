package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	testenv "github.com/rkms/rkms/internal/testing/env"
)

// running is one rkms process run in-process through Main, as `rkms serve` would.
type running struct {
	admin  string
	stdout *testenv.LockedBuffer
	stderr *testenv.LockedBuffer
	stop   func() int
}

func startServe(t *testing.T, args ...string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{stdout: &testenv.LockedBuffer{}, stderr: &testenv.LockedBuffer{}}
	done := make(chan int, 1)
	go func() { done <- Main(ctx, append([]string{"serve"}, args...), nil, r.stdout, r.stderr) }()
	var once sync.Once
	code := 0
	r.stop = func() int {
		once.Do(func() { cancel(); code = <-done })
		return code
	}
	t.Cleanup(func() { r.stop() })
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case c := <-done:
			done <- c // for the cleanup's stop, which waits for it
			t.Fatalf("rkms serve exited with %d\nstdout: %s\nstderr: %s", c, r.stdout, r.stderr)
		default:
		}
		if i := strings.Index(r.stdout.String(), "admin API: http://"); i >= 0 {
			rest := r.stdout.String()[i+len("admin API: http://"):]
			r.admin = rest[:strings.IndexByte(rest, ' ')]
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("rkms serve did not start\nstdout: %s\nstderr: %s", r.stdout, r.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type keyResp struct {
	ID      string `json:"id"`
	Key     string `json:"key"`
	Version uint32 `json:"version"`
	Error   string `json:"error"`
}

func call(t *testing.T, method, url, token string) (int, keyResp) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	var kr keyResp
	if resp.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(resp.Body).Decode(&kr); err != nil {
			t.Fatalf("%s %s: %d, body not JSON: %v", method, url, resp.StatusCode, err)
		}
	}
	return resp.StatusCode, kr
}

// getJSON GETs url with the bearer token and decodes its JSON body into v; it returns the status.
func getJSON(t *testing.T, url, token string, v any) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %d, body not JSON: %v", url, resp.StatusCode, err)
	}
	return resp.StatusCode
}

// listKeys pages through a GET /keys listing and checks that it lists exactly want (sorted).
func listKeys(t *testing.T, url, token string, want []string) {
	t.Helper()
	var got []string
	next := ""
	for range 100 {
		target := url
		if next != "" {
			target += "&after=" + next
		}
		var page struct {
			IDs  []string `json:"ids"`
			Next string   `json:"next"`
		}
		if code := getJSON(t, target, token, &page); code != http.StatusOK {
			t.Fatalf("GET %s: %d", target, code)
		}
		got = append(got, page.IDs...)
		if next = page.Next; next == "" {
			break
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("GET %s listed %v, want %v", url, got, want)
	}
}

func writeConfig(t *testing.T, dir, body string) string {
	t.Helper()
	p := filepath.Join(dir, "rkms.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestEmbeddedDefaultsKeepKeys is the `make run` promise: on the embedded defaults (only the
// ports moved so the test cannot collide with a developer's rkms), GET /key returns the same key
// twice and again after a restart, with the token that rkms generated and printed.
func TestEmbeddedDefaultsKeepKeys(t *testing.T) {
	t.Setenv("RKMS_ADMIN_TOKEN", "")
	dir := t.TempDir()
	t.Chdir(dir)
	cfg := writeConfig(t, dir, fmt.Sprintf("admin: {listen: 127.0.0.1:%d, grpc_listen: 127.0.0.1:%d}\nextproc: {listen: 127.0.0.1:%d}\n",
		testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)))

	r := startServe(t, "--config", cfg)
	if !strings.Contains(r.stdout.String(), "generated admin token in rkms-data/admin.token") {
		t.Fatalf("token location not printed: %s", r.stdout)
	}
	tok, err := os.ReadFile(filepath.Join(dir, "rkms-data", "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tok))
	if st, _ := call(t, "GET", "http://"+r.admin+"/key?id=alice", ""); st != http.StatusUnauthorized {
		t.Fatalf("no token: %d", st)
	}
	st, first := call(t, "GET", "http://"+r.admin+"/key?id=alice", token)
	if st != http.StatusOK || first.ID != "alice" || first.Version != 1 || len(first.Key) != 44 {
		t.Fatalf("first GET: %d %+v", st, first)
	}
	if _, again := call(t, "GET", "http://"+r.admin+"/api/v1/key?id=alice", token); again.Key != first.Key {
		t.Fatal("second GET returned another key")
	}
	if code := r.stop(); code != 0 {
		t.Fatalf("serve exit code %d: %s", code, r.stderr)
	}
	if strings.Contains(r.stderr.String(), first.Key) || strings.Contains(r.stdout.String(), first.Key) {
		t.Fatal("key material in the logs")
	}

	r2 := startServe(t, "--config", cfg)
	if strings.Contains(r2.stdout.String(), "generated admin token") {
		t.Fatal("token regenerated on restart")
	}
	if _, after := call(t, "GET", "http://"+r2.admin+"/key?id=alice", token); after.Key != first.Key {
		t.Fatal("key changed across a restart")
	}
}

// TestServeOnAWS runs the real configuration path against three local-kms regions and dynalite:
// get/create, a region outage, rotation and deletion through the admin API.
func TestServeOnAWS(t *testing.T) {
	testenv.Integration(t)
	testenv.SetAWSEnv(t)
	t.Setenv("RKMS_ADMIN_TOKEN", "test-token-0123456789")

	kms := []*testenv.KMS{testenv.StartKMS(t, "us-east-1"), testenv.StartKMS(t, "us-west-2"), testenv.StartKMS(t, "eu-west-1")}
	db := testenv.StartDynalite(t)
	var regions strings.Builder
	for _, k := range kms {
		fmt.Fprintf(&regions, "    - {name: %s, key_id: %q, endpoint: %q}\n", k.Region, k.KeyARN, k.Endpoint)
	}
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`data_dir: %[1]s/data
admin: {listen: 127.0.0.1:%[2]d, grpc_listen: "", token_file: %[1]s/token}
extproc: {listen: 127.0.0.1:%[3]d}
kms:
  provider: aws
  min_regions: 2
  timeout: 2s
  regions:
%[4]s
store:
  type: dynamodb
  dynamodb: {table: rkms_keys, region: us-east-1, endpoint: %[5]q, create_table: true, timeout: 2s}
`, dir, testenv.FreePort(t), testenv.FreePort(t), regions.String(), db.Endpoint))
	var out bytes.Buffer
	if code := Main(context.Background(), []string{"config", "check", cfg}, nil, &out, &out); code != 0 {
		t.Fatalf("config check: %d %s", code, out.String())
	}

	r := startServe(t, "--config", cfg)
	base, token := "http://"+r.admin, "test-token-0123456789"
	st, k1 := call(t, "GET", base+"/key?id=tenant-acme", token)
	if st != http.StatusOK || k1.Version != 1 {
		t.Fatalf("GET: %d %+v\n%s", st, k1, r.stderr)
	}
	if st, _ := call(t, "GET", base+"/readyz", ""); st != http.StatusOK {
		t.Fatalf("readyz %d", st)
	}

	kms[0].Stop() // a region outage: existing and new keys keep working with 2 of 3
	if _, again := call(t, "GET", base+"/key?id=tenant-acme", token); again.Key != k1.Key {
		t.Fatal("key changed during an outage")
	}
	if st, k := call(t, "GET", base+"/key?id=tenant-new", token); st != http.StatusOK || k.Key == "" {
		t.Fatalf("create with one region down: %d %+v", st, k)
	}
	st, rot := call(t, "POST", base+"/key/rotate?id=tenant-acme", token)
	if st != http.StatusOK || rot.Version != 2 {
		t.Fatalf("rotate: %d %+v", st, rot)
	}
	if _, cur := call(t, "GET", base+"/key?id=tenant-acme", token); cur.Version != 2 || cur.Key == k1.Key {
		t.Fatalf("after rotate: %+v", cur)
	}
	if st, _ := call(t, "DELETE", base+"/key?id=tenant-acme", token); st != http.StatusNoContent {
		t.Fatalf("delete: %d", st)
	}
	// The id is kept as deleted (a tombstone in DynamoDB): nothing re-creates it by accident.
	lifecycle := []struct {
		method, target string
		want           int
	}{
		{"DELETE", "/key?id=tenant-acme", http.StatusGone},
		{"GET", "/key?id=tenant-acme", http.StatusGone},
		{"GET", "/key?id=tenant-acme&create=false", http.StatusGone},
		{"GET", "/key?id=tenant-typo&create=false", http.StatusNotFound},
		{"POST", "/key?id=tenant-acme", http.StatusGone},
		{"POST", "/key?id=tenant-acme&recreate=true", http.StatusCreated},
		{"GET", "/key?id=tenant-acme&version=1", http.StatusOK},
		{"GET", "/key?id=tenant-acme&version=2", http.StatusNotFound},
	}
	for _, c := range lifecycle {
		if st, e := call(t, c.method, base+c.target, token); st != c.want {
			t.Fatalf("%s %s: %d %+v, want %d", c.method, c.target, st, e, c.want)
		}
	}
	listKeys(t, base+"/keys?prefix=tenant-&limit=1", token, []string{"tenant-acme", "tenant-new"})

	kms[1].Stop() // now only one region: below min_regions, creation must fail with 503
	if st, e := call(t, "GET", base+"/key?id=tenant-third", token); st != http.StatusServiceUnavailable || e.Error == "" {
		t.Fatalf("create with 1 of 3 regions: %d %+v", st, e)
	}
	db.Stop()
	if st, _ := call(t, "GET", base+"/readyz", ""); st != http.StatusServiceUnavailable {
		t.Fatalf("readyz with the store down: %d", st)
	}
}

func TestConfigCheckCommand(t *testing.T) {
	dir := t.TempDir()
	bad := writeConfig(t, dir, "kms:\n  provider: gcp\n  timeout: soon\n")
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"config", "check", bad}, nil, &out, &errb); code != 1 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(errb.String(), "line 3") {
		t.Fatalf("no line in %q", errb.String())
	}
	if code := Main(context.Background(), []string{"bogus"}, nil, &out, &errb); code != 2 {
		t.Fatalf("unknown command exit %d", code)
	}
	out.Reset()
	if code := Main(context.Background(), []string{"version"}, nil, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "rkms ") {
		t.Fatalf("version: %d %q", code, out.String())
	}
}

// TestAdminTokenRules: the same minimum length for the token from any source, and a token file
// that group or others can read is refused.
func TestAdminTokenRules(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("RKMS_ADMIN_TOKEN", "a")
	if _, _, err := adminToken(filepath.Join(dir, "none")); err == nil || !strings.Contains(err.Error(), "shorter than 16") {
		t.Errorf("short RKMS_ADMIN_TOKEN: %v", err)
	}
	t.Setenv("RKMS_ADMIN_TOKEN", "")
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := adminToken(short); err == nil || !strings.Contains(err.Error(), "shorter than 16") {
		t.Errorf("short token file: %v", err)
	}
	open := filepath.Join(dir, "open")
	if err := os.WriteFile(open, []byte("open-token-0123456789\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := adminToken(open); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable token file: %v", err)
	}
	if err := os.Chmod(open, 0o600); err != nil {
		t.Fatal(err)
	}
	if tok, _, err := adminToken(open); err != nil || tok != "open-token-0123456789" {
		t.Errorf("0600 token file: %q, %v", tok, err)
	}
}
