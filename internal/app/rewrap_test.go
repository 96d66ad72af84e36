package app

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"

	rkmsv1 "github.com/rkms/rkms/api/rkms/v1"
	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/secret"
)

const (
	rewrapOpsToken      = "ops-token-0123456789abcdef"
	rewrapMigratorToken = "migrator-token-0123456789"
)

// rewrapCredentials: ops may do everything, migrator may only rewrap tenant- ids.
const rewrapCredentials = `  credentials:
    - name: ops
      token_file: ops.token
      allow: [read, create, rotate, delete, list, rewrap]
    - name: migrator
      token_env: RKMS_MIGRATOR_TOKEN
      allow: [rewrap]
      id_prefixes: ["tenant-"]
`

func rewrapSetup(t *testing.T, dir string) {
	t.Helper()
	t.Setenv("RKMS_ADMIN_TOKEN", "")
	t.Setenv("RKMS_MIGRATOR_TOKEN", rewrapMigratorToken)
	if err := os.WriteFile(filepath.Join(dir, "ops.token"), []byte(rewrapOpsToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestRewrapServe: rkms on its embedded keyring (local software KMS, bbolt), Rewrap through the
// admin API and the key API.
func TestRewrapServe(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	rewrapSetup(t, dir)
	cfg := writeConfig(t, dir, fmt.Sprintf("admin:\n  listen: 127.0.0.1:%d\n  grpc_listen: 127.0.0.1:%d\n%sextproc: {listen: 127.0.0.1:%d}\n",
		testenv.FreePort(t), testenv.FreePort(t), rewrapCredentials, testenv.FreePort(t)))
	r := startServe(t, "--config", cfg)
	checkRewrap(t, r)
}

// TestRewrapServeOnAWS: the same against three local-kms regions and dynalite.
func TestRewrapServeOnAWS(t *testing.T) {
	testenv.Integration(t)
	testenv.SetAWSEnv(t)
	dir := t.TempDir()
	t.Chdir(dir)
	rewrapSetup(t, dir)
	kms := []*testenv.KMS{testenv.StartKMS(t, "us-east-1"), testenv.StartKMS(t, "us-west-2"), testenv.StartKMS(t, "eu-west-1")}
	db := testenv.StartDynalite(t)
	var regions strings.Builder
	for _, k := range kms {
		fmt.Fprintf(&regions, "    - {name: %s, key_id: %q, endpoint: %q}\n", k.Region, k.KeyARN, k.Endpoint)
	}
	cfg := writeConfig(t, dir, fmt.Sprintf(`data_dir: %[1]s/data
admin:
  listen: 127.0.0.1:%[2]d
  grpc_listen: 127.0.0.1:%[3]d
%[4]sextproc: {listen: 127.0.0.1:%[5]d}
kms:
  provider: aws
  min_regions: 2
  timeout: 2s
  regions:
%[6]s
store:
  type: dynamodb
  dynamodb: {table: rkms_keys, region: us-east-1, endpoint: %[7]q, create_table: true, timeout: 2s}
`, dir, testenv.FreePort(t), testenv.FreePort(t), rewrapCredentials, testenv.FreePort(t), regions.String(), db.Endpoint))
	r := startServe(t, "--config", cfg)
	checkRewrap(t, r)
}

// checkRewrap: values sealed under version 1 of tenant-acme (with the key read through the admin
// API), rotated, come back under version 2 through both APIs and open there with their label
// and context; migrator is refused on an id outside its prefix; the audit records name each
// call and carry no ciphertext or value.
func checkRewrap(t *testing.T, r *running) {
	t.Helper()
	base := "http://" + r.admin
	keyAt := func(v uint32) envelope.Key {
		st, k := call(t, "GET", fmt.Sprintf("%s/key?id=tenant-acme&version=%d", base, v), rewrapOpsToken)
		b, err := base64.StdEncoding.DecodeString(k.Key)
		if st != http.StatusOK || err != nil {
			t.Fatalf("read version %d: %d %v", v, st, err)
		}
		return envelope.Key{ID: "tenant-acme", Version: v, Secret: secret.New(b)}
	}
	if st, _ := call(t, "POST", base+"/key?id=tenant-acme", rewrapOpsToken); st != http.StatusCreated {
		t.Fatalf("create: %d", st)
	}
	if st, _ := call(t, "POST", base+"/key?id=other", rewrapOpsToken); st != http.StatusCreated {
		t.Fatalf("create other: %d", st)
	}
	v1 := keyAt(1)
	tctx := []byte("tenant=acme")
	sealV1 := func(mode envelope.Mode, label, pt string) string {
		out, err := envelope.Seal(nil, v1, mode, label, tctx, []byte(pt))
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	ssn, email := sealV1(envelope.Randomized, "ssn", `"123-45-6789"`), sealV1(envelope.Deterministic, "email", `"a@example.com"`)
	if st, rot := call(t, "POST", base+"/key/rotate?id=tenant-acme", rewrapOpsToken); st != http.StatusOK || rot.Version != 2 {
		t.Fatalf("rotate: %d %+v", st, rot)
	}

	// HTTP
	body := fmt.Sprintf(`{"items":[{"key_id":"tenant-acme","label":"ssn","context":%q,"ciphertext":%q},`+
		`{"key_id":"other","label":"ssn","ciphertext":%q}]}`, base64.StdEncoding.EncodeToString(tctx), ssn, ssn)
	req, _ := http.NewRequest("POST", base+"/v1/rewrap", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+rewrapMigratorToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var hr struct {
		Items []struct {
			Ciphertext string
			Version    uint32
			Rewrapped  bool
			Error      *struct{ Code, Message string }
		}
	}
	err = json.NewDecoder(resp.Body).Decode(&hr)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || len(hr.Items) != 2 {
		t.Fatalf("POST /v1/rewrap: %d %v %+v", resp.StatusCode, err, hr)
	}
	if hr.Items[0].Error != nil || !hr.Items[0].Rewrapped || hr.Items[0].Version != 2 {
		t.Fatalf("HTTP item: %+v", hr.Items[0])
	}
	if hr.Items[1].Error == nil || hr.Items[1].Error.Code != "forbidden" {
		t.Fatalf("HTTP item outside the prefix: %+v", hr.Items[1])
	}
	v2 := keyAt(2)
	if pt, err := envelope.Open(nil, v2, "ssn", tctx, []byte(hr.Items[0].Ciphertext)); err != nil || string(pt) != `"123-45-6789"` {
		t.Fatalf("HTTP result opens to %q, %v", pt, err)
	}

	// gRPC
	keys := rkmsv1.NewKeyServiceClient(dial(t, addrAfter(t, r.stdout.String(), "key API:")))
	ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+rewrapMigratorToken)
	gr, err := keys.Rewrap(ctx, &rkmsv1.RewrapRequest{Items: []*rkmsv1.RewrapItem{
		{KeyId: "tenant-acme", Label: "email", Context: tctx, Ciphertext: email},
		{KeyId: "tenant-acme", Label: "email", Context: tctx, Ciphertext: email},
	}})
	if err != nil {
		t.Fatalf("Rewrap: %v", err)
	}
	a, b := gr.GetItems()[0], gr.GetItems()[1]
	if a.GetError() != nil || !a.GetRewrapped() || a.GetVersion() != 2 || a.GetCiphertext() != b.GetCiphertext() {
		t.Fatalf("gRPC items: %v %v", a, b)
	}
	fresh, err := envelope.Seal(nil, v2, envelope.Deterministic, "email", tctx, []byte(`"a@example.com"`))
	if err != nil || string(fresh) != a.GetCiphertext() {
		t.Fatalf("a deterministic rewrap differs from a fresh seal under version 2: %v", err)
	}

	if code := r.stop(); code != 0 {
		t.Fatalf("serve exit code %d: %s", code, r.stderr)
	}
	logs := r.stderr.String()
	for _, want := range [][]string{
		{`"api":"http"`, `"op":"rewrap"`, `"key_id":"other"`, `"result":"denied"`, `"principal":"migrator"`},
		{`"api":"http"`, `"op":"rewrap"`, `"items":2`, `"key_ids":["tenant-acme","other"]`, `"rewrapped":1`, `"failed":1`, `"result":"ok"`, `"principal":"migrator"`},
		{`"api":"grpc"`, `"op":"rewrap"`, `"items":2`, `"key_ids":["tenant-acme"]`, `"rewrapped":2`, `"failed":0`, `"principal":"migrator"`},
	} {
		if !hasRecord(logs, want) {
			t.Errorf("no audit record with %v", want)
		}
	}
	for _, leak := range []string{ssn[10:40], email[10:40], hr.Items[0].Ciphertext[10:40], "123-45-6789", "a@example.com", rewrapMigratorToken} {
		if strings.Contains(logs, leak) {
			t.Errorf("the logs carry %q", leak)
		}
	}
}
