package app

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/credentials/insecure"

	"google.golang.org/grpc"

	rkmsv1 "github.com/rkms/rkms/api/rkms/v1"
	"github.com/rkms/rkms/internal/testing/env"
)

const leakPolicies = `policies:
  - name: patients
    match: {path_prefix: /patients}
    key_id: "tenant-{header:x-tenant-id}"
    request: {encrypt: ["$.ssn", "$.note"]}
    response: {decrypt: ["$.ssn", "$.note"]}
`

// tamper changes one character of the ciphertext in doc, inside its base64 text.
func tamper(t *testing.T, doc []byte) []byte {
	t.Helper()
	i := bytes.Index(doc, []byte(`"rkms:`))
	if i < 0 {
		t.Fatalf("no ciphertext in %s", doc)
	}
	out := bytes.Clone(doc)
	j := i + 40
	if out[j] == 'A' {
		out[j] = 'B'
	} else {
		out[j] = 'A'
	}
	return out
}

// ciphertextOf returns the JSON string (with quotes) of the first ciphertext in doc.
func ciphertextOf(t *testing.T, doc []byte) string {
	t.Helper()
	i := bytes.Index(doc, []byte(`"rkms:`))
	if i < 0 {
		t.Fatalf("no ciphertext in %s", doc)
	}
	j := bytes.IndexByte(doc[i+1:], '"')
	return string(doc[i : i+j+2])
}

// TestNoKeyMaterialInLogsOrErrors runs rkms serve (three local-kms regions, dynalite, debug
// logging captured as JSON) through everything a deployment sees: admin API calls with and
// without a token and with bad ids, ext_proc streams that encrypt, decrypt, meet a tampered
// ciphertext, a cross-tenant read, a ciphertext moved to another field, invalid JSON, a deleted
// key and an unavailable keyring, and gRPC key API calls. Then no data key the run touched (all
// of them learnt through the key APIs) appears in any log line or error body, raw, JSON-escaped,
// base64 (standard or URL, padded or not) or hex, and neither does any tagged plaintext or the
// admin token.
func TestNoKeyMaterialInLogsOrErrors(t *testing.T) {
	testenv.Integration(t)
	const token = "leak-test-token-0123456789"
	t.Setenv("RKMS_ADMIN_TOKEN", token)
	cfg, kms, db := awsServeConfig(t, leakPolicies)
	r := startServe(t, "--config", cfg)
	out := r.stdout.String()
	ext, err := grpc.NewClient(addrAfter(t, out, "ext_proc:"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer ext.Close()
	l := &leakRun{t: t, admin: r.admin, token: token, ext: ext, keyAPI: rkmsv1.NewKeyServiceClient(dial(t, addrAfter(t, out, "key API:"))),
		keys: map[string][]byte{}}
	var tagged []string
	plain := func() string {
		p := fmt.Sprintf("LEAK-PLAINTEXT-%03d", len(tagged))
		tagged = append(tagged, p)
		return p
	}
	get := func(id string) func(context.Context, rkmsv1.KeyServiceClient) (proto, error) {
		return func(ctx context.Context, c rkmsv1.KeyServiceClient) (proto, error) {
			return c.GetKey(ctx, &rkmsv1.GetKeyRequest{Id: id})
		}
	}
	rotate := func(id string) func(context.Context, rkmsv1.KeyServiceClient) (proto, error) {
		return func(ctx context.Context, c rkmsv1.KeyServiceClient) (proto, error) {
			return c.RotateKey(ctx, &rkmsv1.RotateKeyRequest{Id: id})
		}
	}
	del := func(id string) func(context.Context, rkmsv1.KeyServiceClient) (proto, error) {
		return func(ctx context.Context, c rkmsv1.KeyServiceClient) (proto, error) {
			return c.DeleteKey(ctx, &rkmsv1.DeleteKeyRequest{Id: id})
		}
	}
	wantRefused := func(what string, got, want int) {
		t.Helper()
		if got != want {
			t.Fatalf("%s: status %d, want %d", what, got, want)
		}
	}

	// ext_proc creates tenant-a's key, seals for the app, opens for the client.
	p1 := plain()
	body1 := `{"ssn":"` + p1 + `","note":"` + plain() + `","name":"n"}`
	sealedA1, atClient, refused := l.extExchange("a", body1, nil)
	wantRefused("encrypt", refused, 0)
	if bytes.Contains(sealedA1, []byte(p1)) || string(atClient) != body1 {
		t.Fatalf("round trip: app %s, client %s", sealedA1, atClient)
	}

	// Admin HTTP API: the key, then every refusal.
	l.adminCall("GET", "/key?id=tenant-a", token, 200)
	l.adminCall("GET", "/key?id=tenant-a", "", 401)
	l.adminCall("GET", "/api/v1/key?id=tenant-a", "wrong-token-0123456789", 401)
	l.adminCall("POST", "/key/rotate?id=tenant-a", "", 401)
	l.adminCall("DELETE", "/key?id=tenant-a", "", 401)
	l.adminCall("GET", "/key?id=bad%20id", token, 400)
	l.adminCall("GET", "/key?id="+strings.Repeat("k", 257), token, 400)
	l.adminCall("GET", "/key?id=a&id=b", token, 400)
	l.adminCall("DELETE", "/key?id=tenant-absent", token, 404)
	l.adminCall("POST", "/key/rotate?id=tenant-absent", token, 404)
	l.adminCall("PUT", "/key?id=tenant-a", token, 405)
	l.adminCall("GET", "/nowhere", token, 404)

	// Rotation: the old version still opens, the new one seals.
	l.adminCall("POST", "/key/rotate?id=tenant-a", token, 200)
	l.adminCall("GET", "/key?id=tenant-a", token, 200)
	_, atClient, refused = l.extExchange("a", `{"name":"n"}`, sealedA1)
	wantRefused("decrypt v1", refused, 0)
	if !bytes.Contains(atClient, []byte(p1)) {
		t.Fatalf("v1 ciphertext after rotation: %s", atClient)
	}
	sealedA2, _, refused := l.extExchange("a", `{"ssn":"`+plain()+`"}`, nil)
	wantRefused("encrypt v2", refused, 0)

	// gRPC key API on tenant-b, whose key ext_proc creates.
	sealedB, _, refused := l.extExchange("b", `{"ssn":"`+plain()+`"}`, nil)
	wantRefused("encrypt b", refused, 0)
	l.grpcCall(true, "OK", get("tenant-b"))
	l.grpcCall(false, "Unauthenticated", get("tenant-b"))
	l.grpcCall(false, "Unauthenticated", rotate("tenant-b"))
	l.grpcCall(true, "InvalidArgument", get("bad id"))
	l.grpcCall(true, "InvalidArgument", del(strings.Repeat("k", 257)))
	l.grpcCall(true, "OK", rotate("tenant-b"))
	l.grpcCall(true, "OK", get("tenant-b"))
	l.grpcCall(true, "NotFound", del("tenant-absent"))

	// ext_proc refusals.
	_, _, refused = l.extExchange("a", `{"name":"n"}`, tamper(t, sealedA2))
	wantRefused("tampered ciphertext", refused, 502)
	_, _, refused = l.extExchange("a", string(sealedA2), nil)
	wantRefused("already a ciphertext", refused, 400)
	_, _, refused = l.extExchange("b", `{"name":"n"}`, sealedA1)
	wantRefused("cross-tenant read", refused, 502)
	_, _, refused = l.extExchange("a", `{"name":"n"}`, []byte(`{"note":`+ciphertextOf(t, sealedA2)+`}`))
	wantRefused("ciphertext moved to another field", refused, 502)
	_, _, refused = l.extExchange("a", `{"ssn":"`+plain()+`"`, nil)
	wantRefused("invalid JSON", refused, 400)
	_, _, refused = l.extExchange("a", `{"name":"n"}`, []byte(`{"ssn":"`+plain()+`"`))
	wantRefused("invalid JSON response", refused, 502)
	_, _, refused = l.extExchange("", `{"ssn":"`+plain()+`"}`, nil)
	wantRefused("no tenant", refused, 400)
	l.extViolation(`{"ssn":"` + plain() + `"}`)
	l.grpcCall(true, "OK", del("tenant-b"))
	_, _, refused = l.extExchange("b", `{"name":"n"}`, sealedB)
	wantRefused("deleted key", refused, 502)
	l.adminCall("DELETE", "/key?id=tenant-a", token, 204)

	// The keyring unavailable: with one region of three, no key can be made (min_regions 2).
	kms[0].Stop()
	kms[1].Stop()
	_, _, refused = l.extExchange("c", `{"ssn":"`+plain()+`"}`, nil)
	wantRefused("keyring unavailable", refused, 503)
	l.adminCall("GET", "/key?id=tenant-d", token, 503)
	l.grpcCall(true, "Unavailable", get("tenant-e"))
	db.Stop()
	l.adminCall("GET", "/readyz", "", 503)
	l.adminCall("GET", "/key?id=tenant-f", token, 503)
	l.grpcCall(true, "Unavailable", rotate("tenant-g"))

	if code := r.stop(); code != 0 {
		t.Fatalf("serve exit %d", code)
	}
	logs := r.stderr.String() + r.stdout.String()
	checkNoLeaks(t, logs, l, tagged, token)
}

// checkNoLeaks is the verdict of the leak test, after checking that there was something to look
// at (so that it cannot pass vacuously).
func checkNoLeaks(t *testing.T, logs string, l *leakRun, tagged []string, token string) {
	t.Helper()
	for _, want := range []string{`"level":"DEBUG"`, `"msg":"request refused"`, `"msg":"ext_proc stream refused"`,
		`"logger":"audit","api":"extproc","op":"create","key_id":"tenant-a","version":1,"result":"ok"`,
		`"logger":"audit","api":"http","op":"read","key_id":"tenant-a","version":2,"result":"ok"`,
		`"logger":"audit","api":"grpc","op":"delete","key_id":"tenant-b","result":"ok"`,
		`"logger":"audit","api":"http","op":"read","key_id":"tenant-a","result":"denied"`,
		`"logger":"audit","api":"grpc","op":"rotate","key_id":"tenant-b","result":"denied"`,
		`"result":"unavailable"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("the run's logs lack %s: the test did not see what it meant to", want)
		}
	}
	if len(l.keys) != 4 {
		t.Fatalf("keys learnt: %d, want 4 (tenant-a and tenant-b, two versions each)", len(l.keys))
	}
	if len(l.errors) < 25 {
		t.Fatalf("only %d error bodies recorded", len(l.errors))
	}
	errs := strings.Join(l.errors, "\n")
	// Any piece of any key, in any form (TestLeakDetector checks the detector finds them).
	d := newLeakDetector(l.keys)
	if what, ok := d.find(logs); ok {
		t.Errorf("the logs hold a piece of %s", what)
	}
	if what, ok := d.find(errs); ok {
		t.Errorf("an error body holds a piece of %s", what)
	}
	for _, p := range tagged {
		if strings.Contains(logs, p) || strings.Contains(errs, p) {
			t.Errorf("tagged plaintext %s appears in the logs or an error body", p)
		}
	}
	if strings.Contains(logs, token) || strings.Contains(errs, token) {
		t.Error("the admin token appears in the logs or an error body")
	}
	if t.Failed() {
		t.Logf("logs:\n%s\nerrors:\n%s", logs, errs)
	}
}
