package extproc

import (
	"context"
	"strings"
	"testing"

	"github.com/rkms/rkms/extproc/policy"
)

// TestBodyTransformInteroperates: a body sealed by BodyTransform (rkms seal) is opened by a
// stream of the server for the same tenant, a body the server sealed on its way to the app is
// opened by BodyTransform (rkms open), and what BodyTransform refuses it refuses with the
// server's message and without the value.
func TestBodyTransformInteroperates(t *testing.T) {
	e := newTestEnv(t, Options{})
	var pol *policy.Policy
	for _, p := range e.srv.policies.Policies() {
		if p.Name() == "patients" {
			pol = p
		}
	}
	const doc = `{"name":"Ann","ssn":"LOCAL-SSN-1","contact":{"email":"ann@example.com"},"cards":[{"number":4111}]}`
	ctx := context.Background()
	seal := &BodyTransform{Keys: e.keys, Policy: pol, KeyID: "tenant-t1"}
	sealed, n, err := seal.Apply(ctx, []byte(doc))
	if err != nil || n != 3 || strings.Contains(string(sealed), "LOCAL-SSN-1") {
		t.Fatalf("Apply: %d values, %v: %s", n, err, sealed)
	}

	// The server opens it for the tenant: a record the app stored.
	stored := func(*httpReq) httpResp {
		return httpResp{status: 200, headers: hdrs{{"content-type", "application/json"}}, body: sealed}
	}
	x := e.envoy.do(envoyCfg{}, jsonReq("GET", "/patients/1", "t1", ""), stored)
	if x.client.status != 200 || string(x.client.body) != doc {
		t.Fatalf("the server opened what BodyTransform sealed as %d %s", x.client.status, x.client.body)
	}
	if x := e.envoy.do(envoyCfg{}, jsonReq("GET", "/patients/1", "t2", ""), stored); x.client.status != 502 {
		t.Fatalf("another tenant read it: %d %s", x.client.status, x.client.body)
	}

	// BodyTransform opens what the server sealed on its way to the app.
	x = e.do(envoyCfg{}, jsonReq("POST", "/patients", "t1", doc))
	if x.upstream == nil || strings.Contains(string(x.upstream.body), "LOCAL-SSN-1") {
		t.Fatalf("the app received %v", x.upstream)
	}
	open := &BodyTransform{Keys: e.keys, Policy: pol, Response: true, KeyID: "tenant-t1"}
	opened, n, err := open.Apply(ctx, x.upstream.body)
	if err != nil || n != 3 || string(opened) != doc {
		t.Fatalf("Apply opened what the server sealed as %d values, %v: %s", n, err, opened)
	}

	tests := []struct {
		name string
		bt   *BodyTransform
		body string
		want string
	}{
		{"another key id", &BodyTransform{Keys: e.keys, Policy: pol, Response: true, KeyID: "tenant-t2"}, string(sealed), "authentication failed"},
		{"sealed twice", seal, string(sealed), "is already encrypted"},
		{"tripwire", seal, `{"email":"LOCAL-SSN-1"}`, "has the name of tagged field email"},
		{"too many fields", &BodyTransform{Keys: e.keys, Policy: pol, KeyID: "tenant-t1", MaxFields: 1}, doc, "more than 1 selected fields"},
		{"no keys", &BodyTransform{Policy: pol}, doc, "keys and policy are required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := tc.bt.Apply(ctx, []byte(tc.body))
			if err == nil || out != nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "LOCAL-SSN-1") {
				t.Fatalf("Apply: %v, %s; want an error with %q and no value", err, out, tc.want)
			}
		})
	}
}
