package app

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/internal/config"
	"github.com/rkms/rkms/internal/metrics"
	"github.com/rkms/rkms/internal/testing/bulkgen"
	"github.com/rkms/rkms/internal/testing/env"
)

// versionsOf returns how many ciphertexts of out are under each key version.
func versionsOf(t *testing.T, out string) map[uint32]int {
	t.Helper()
	got := map[uint32]int{}
	for _, part := range strings.Split(out, `"rkms:`)[1:] {
		text := "rkms:" + part[:strings.IndexByte(part, '"')]
		h, err := envelope.Parse([]byte(text))
		if err != nil {
			t.Fatalf("not a ciphertext: %s: %v", text, err)
		}
		got[h.KeyVersion]++
	}
	return got
}

// rotateLocal rotates the keys of ids in cfgPath's keyring (no rkms running).
func rotateLocal(t *testing.T, cfgPath string, ids ...string) {
	t.Helper()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := openKeys(context.Background(), cfg, cliLogger(&strings.Builder{}), metrics.New())
	if err != nil {
		t.Fatal(err)
	}
	defer ks.close()
	for _, id := range ids {
		if _, err := ks.kr.Rotate(context.Background(), id); err != nil {
			t.Fatal(err)
		}
	}
}

func tenantIDs() []string {
	ids := make([]string, bulkgen.Tenants)
	for i := range ids {
		ids[i] = fmt.Sprintf("tenant-t%d", i)
	}
	return ids
}

// TestBulkRewrapLocal: records sealed under version 1, after a rotation, are rewrapped in
// process to version 2 (every field, in order, audited), open to the original records, and a
// second rewrap changes nothing. A record with a tampered ciphertext is rejected as
// authentication_failed without its plaintext anywhere.
func TestBulkRewrapLocal(t *testing.T) {
	cfg, dir := bulkConfig(t)
	recs := genRecords(300)
	plain := strings.Join(recs, "")
	code, sealed, stderr := cli(t, plain, "seal", "--config", cfg, "--policy", "bulk", "--format", "ndjson")
	if code != 0 {
		t.Fatalf("seal: %d %s", code, stderr)
	}
	_, canarySealed, _ := cli(t, canaryRecord("t1")+"\n", "seal", "--config", cfg, "--policy", "bulk", "--format", "ndjson")
	rotateLocal(t, cfg, tenantIDs()...)

	in := sealed + string(tamper(t, []byte(strings.TrimSpace(canarySealed)))) + "\n"
	reject := filepath.Join(dir, "reject.ndjson")
	summary := filepath.Join(dir, "summary.json")
	code, rewrapped, stderr := cli(t, in, "rewrap", "--config", cfg, "--policy", "bulk", "--format", "ndjson", "-j", "3",
		"--reject", reject, "--summary-json", summary)
	if code != 1 {
		t.Fatalf("rewrap: exit %d (want 1: one record rejected): %s", code, stderr)
	}
	if v := versionsOf(t, rewrapped); v[2] != 4*len(recs) || v[1] != 0 {
		t.Fatalf("versions after rewrap: %v, want %d under version 2", v, 4*len(recs))
	}
	if !strings.Contains(stderr, fmt.Sprintf("%d fields rewrapped", 4*len(recs))) || !strings.Contains(stderr, "authentication_failed 1") {
		t.Errorf("summary: %s", stderr)
	}
	if !strings.Contains(stderr, "op=rewrap") || !strings.Contains(stderr, "api=cli") {
		t.Errorf("no audit record of the rewrap on stderr: %s", stderr)
	}
	rej, _ := os.ReadFile(reject)
	if !strings.Contains(string(rej), fmt.Sprintf(`{"line":%d,"error":{"kind":"authentication_failed"`, len(recs)+1)) {
		t.Errorf("reject file: %s", rej)
	}
	sj, _ := os.ReadFile(summary)
	for what, text := range map[string]string{"stderr": stderr, "reject": string(rej), "summary": string(sj)} {
		if strings.Contains(text, bulkCanary) {
			t.Errorf("%s holds the canary", what)
		}
	}
	code, opened, stderr := cli(t, rewrapped, "open", "--config", cfg, "--policy", "bulk", "--format", "ndjson")
	if code != 0 || opened != plain {
		t.Fatalf("open after rewrap: exit %d, differs: %s", code, stderr)
	}
	code, again, stderr := cli(t, rewrapped, "rewrap", "--config", cfg, "--policy", "bulk", "--format", "ndjson")
	if code != 0 || again != rewrapped || !strings.Contains(stderr, " 0 fields rewrapped") {
		t.Fatalf("second rewrap: exit %d, changed: %v: %s", code, again != rewrapped, stderr)
	}
	// One JSON document.
	doc := strings.TrimSpace(strings.SplitN(sealed, "\n", 2)[0])
	code, out, stderr := cli(t, doc, "rewrap", "--config", cfg, "--policy", "bulk")
	if code != 0 || versionsOf(t, out)[2] != 4 || strings.HasSuffix(out, "\n") {
		t.Fatalf("rewrap of a document: exit %d, %s %s", code, out, stderr)
	}
}

// TestBulkRewrapServer: with --server, rewrap posts the ciphertexts to POST /v1/rewrap of a
// running rkms (embedded store, as make run) after a rotation through its admin API; a wrong
// token stops the run at the first record, exit 1, nothing written.
func TestBulkRewrapServer(t *testing.T) {
	t.Setenv("RKMS_ADMIN_TOKEN", "")
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`data_dir: %[1]s/data
admin: {listen: 127.0.0.1:%[2]d, grpc_listen: "", token_file: %[1]s/data/admin.token}
extproc: {listen: 127.0.0.1:%[3]d}
store: {type: embedded, embedded: {path: %[1]s/data/keys.db}}
%[4]s`, dir, testenv.FreePort(t), testenv.FreePort(t), bulkgen.Policy))
	r := startServe(t, "--config", cfg)
	server := "http://" + r.admin
	recs := genRecords(1200) // more items than one call takes: the run splits them
	plain := strings.Join(recs, "")
	args := []string{"--config", cfg, "--policy", "bulk", "--format", "ndjson", "--server", server}
	code, sealed, stderr := cli(t, plain, append([]string{"seal"}, args...)...)
	if code != 0 {
		t.Fatalf("seal --server: %d %s", code, stderr)
	}
	token, err := os.ReadFile(filepath.Join(dir, "data", "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range tenantIDs() {
		if st, k := call(t, "POST", server+"/key/rotate?id="+id, strings.TrimSpace(string(token))); st != http.StatusOK || k.Version != 2 {
			t.Fatalf("rotate %s: %d %+v", id, st, k)
		}
	}
	code, rewrapped, stderr := cli(t, sealed, append([]string{"rewrap", "-j", "2"}, args...)...)
	if code != 0 {
		t.Fatalf("rewrap --server: %d %s", code, stderr)
	}
	if v := versionsOf(t, rewrapped); v[2] != 4*len(recs) {
		t.Fatalf("versions after rewrap --server: %v", v)
	}
	if code, opened, stderr := cli(t, rewrapped, append([]string{"open"}, args...)...); code != 0 || opened != plain {
		t.Fatalf("open --server after rewrap: exit %d: %s", code, stderr)
	}

	bad := filepath.Join(dir, "bad.token")
	if err := os.WriteFile(bad, []byte("not-the-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := cli(t, sealed, append([]string{"rewrap", "--token-file", bad}, args...)...)
	if code != 1 || out != "" || !strings.Contains(stderr, "line 1: unauthenticated") {
		t.Fatalf("rewrap with a wrong token: exit %d, %d bytes out, %s", code, len(out), stderr)
	}
}

// TestBulkRewrapKeyIDFromHeader: under a policy whose key id comes from a JWT claim, which an
// export does not carry, rewrap without --key-id keeps each ciphertext under the key id its
// header names; with --key-id, a ciphertext under another key id fails.
func TestBulkRewrapKeyIDFromHeader(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf("data_dir: %[1]s/data\nadmin: {token_file: %[1]s/data/admin.token}\nstore: {type: embedded, embedded: {path: %[1]s/data/keys.db}}\n%[2]s",
		dir, `policies:
  - name: claims
    match: {path_prefix: /claims}
    key_id: "tenant-{jwt:tenant}"
    request: {encrypt: ["$.ssn"]}
    response: {decrypt: ["$.ssn"]}
`))
	in := `{"id":1,"ssn":"111"}` + "\n" + `{"id":2,"ssn":"222"}` + "\n"
	code, sealed, stderr := cli(t, in, "seal", "--config", cfg, "--policy", "claims", "--format", "ndjson", "--key-id", "tenant-acme")
	if code != 0 {
		t.Fatalf("seal: %d %s", code, stderr)
	}
	rotateLocal(t, cfg, "tenant-acme")
	code, out, stderr := cli(t, sealed, "rewrap", "--config", cfg, "--policy", "claims", "--format", "ndjson")
	if code != 0 || versionsOf(t, out)[2] != 2 {
		t.Fatalf("rewrap without --key-id: exit %d, %s %s", code, out, stderr)
	}
	if code, opened, stderr := cli(t, out, "open", "--config", cfg, "--policy", "claims", "--format", "ndjson", "--claim", "tenant=acme"); code != 0 || opened != in {
		t.Fatalf("open after rewrap: %d %s %s", code, opened, stderr)
	}
	code, _, stderr = cli(t, sealed, "rewrap", "--config", cfg, "--policy", "claims", "--format", "ndjson", "--key-id", "tenant-other")
	if code != 1 || !strings.Contains(stderr, "line 1: invalid_argument") {
		t.Fatalf("rewrap under another --key-id: exit %d, %s", code, stderr)
	}
}
