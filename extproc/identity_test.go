package extproc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/extproc/policy"
)

// identityPolicies adds policies keyed on verified identities and a record-bound one.
func identityPolicies(ps []policy.Config) []policy.Config {
	enc := policy.Direction{Encrypt: []policy.Field{{Path: "$..ssn"}}}
	dec := policy.Direction{Decrypt: []policy.Field{{Path: "$.ssn"}, {Path: "$.items[*].ssn"}}}
	return append(ps,
		policy.Config{Name: "jwt", Match: policy.Match{PathPrefix: "/jwt"}, KeyID: "tenant-{jwt:tenant}", Request: enc, Response: dec},
		policy.Config{Name: "peer", Match: policy.Match{PathPrefix: "/peer"}, KeyID: "{peer:uri_san}", Request: enc, Response: dec},
		policy.Config{Name: "records", Match: policy.Match{PathPrefix: "/records"}, KeyID: "tenant-{jwt:tenant}", Context: "{path:1}",
			Request: enc, Response: policy.Direction{Decrypt: []policy.Field{{Path: "$.ssn"}}}},
		policy.Config{Name: "bodykey", Match: policy.Match{PathPrefix: "/orgs"}, KeyID: "org-{json:$.org}", Request: enc, Response: dec},
	)
}

func sealedKeyID(t *testing.T, x exchange) string {
	t.Helper()
	if x.upstream == nil {
		t.Fatalf("the app got nothing; client got %d %s", x.client.status, x.client.body)
	}
	ct, _ := field(t, x.upstream.body, "ssn").(string)
	h, err := envelope.Parse([]byte(ct))
	if err != nil {
		t.Fatalf("app holds %q: %v", ct, err)
	}
	return h.KeyID
}

// TestVerifiedIdentityKeyIDs: key ids from what Envoy verified (a JWT claim, the client
// certificate), never from what the client claims; a missing identity is refused.
func TestVerifiedIdentityKeyIDs(t *testing.T) {
	e := newTestEnvWith(t, Options{}, identityPolicies)
	acme := envoyCfg{jwt: map[string]any{"tenant": "acme", "sub": "u1"}}
	x := e.do(acme, jsonReq("POST", "/jwt", "globex", `{"ssn":"900-00-0100"}`)) // x-tenant-id: globex is ignored
	if got := sealedKeyID(t, x); got != "tenant-acme" {
		t.Errorf("sealed under %q, want tenant-acme (from the verified claim, not the header)", got)
	}
	id := field(t, x.client.body, "id").(string)
	if x := e.do(envoyCfg{jwt: map[string]any{"tenant": "globex"}}, jsonReq("GET", "/jwt/"+id, "", "")); x.client.status != 502 {
		t.Errorf("globex read acme's record: %d %s", x.client.status, x.client.body)
	}
	if x := e.do(acme, jsonReq("GET", "/jwt/"+id, "", "")); x.client.status != 200 || string(field(t, x.client.body, "ssn").(string)) != "900-00-0100" {
		t.Errorf("acme reads its record: %d %s", x.client.status, x.client.body)
	}
	if x := e.do(envoyCfg{}, jsonReq("POST", "/jwt", "acme", `{"ssn":"900-00-0101"}`)); x.client.status != 400 ||
		errorMessage(t, x) != "key id source: verified JWT claim tenant missing" {
		t.Errorf("no verified JWT: %d %s", x.client.status, x.client.body)
	}
	if x := e.do(envoyCfg{jwt: map[string]any{"tenant": 7.5}}, jsonReq("POST", "/jwt", "", `{"ssn":"1"}`)); x.client.status != 400 {
		t.Errorf("non-integer claim: %d %s", x.client.status, x.client.body)
	}
	x = e.do(envoyCfg{peerURISAN: "spiffe://acme/client"}, jsonReq("POST", "/peer", "", `{"ssn":"900-00-0102"}`))
	if got := sealedKeyID(t, x); got != "spiffe://acme/client" {
		t.Errorf("sealed under %q, want the peer's URI SAN", got)
	}
	if x := e.do(envoyCfg{}, jsonReq("POST", "/peer", "", `{"ssn":"1"}`)); x.client.status != 400 {
		t.Errorf("no client certificate: %d %s", x.client.status, x.client.body)
	}
	e.noPlaintextReached("900-00-0100", "900-00-0101", "900-00-0102")
}

// TestJSONKeyIDStrict: a {json:} key id reads the body as encoding/json would, and refuses a
// document where that is ambiguous.
func TestJSONKeyIDStrict(t *testing.T) {
	e := newTestEnvWith(t, Options{}, identityPolicies)
	for _, tc := range []struct {
		body   string
		status int
		keyID  string
	}{
		{`{"org":"acme","ssn":"1"}`, 201, "org-acme"},
		{`{"org":100,"ssn":"1"}`, 201, "org-100"},
		{`{"ORG":"acme","ssn":"1"}`, 201, "org-acme"}, // encoding/json binds a case variant
		{`{"org":"acme","ORG":"globex","ssn":"1"}`, 400, ""},
		{`{"org":"acme","org":"globex","ssn":"1"}`, 400, ""},
		{`{"org":1e2,"ssn":"1"}`, 400, ""},
		{`{"org":100.0,"ssn":"1"}`, 400, ""},
		{`{"org":-0,"ssn":"1"}`, 400, ""},
	} {
		x := e.do(envoyCfg{}, jsonReq("POST", "/orgs", "", tc.body))
		if x.client.status != tc.status {
			t.Errorf("%s: status %d, want %d (%s)", tc.body, x.client.status, tc.status, x.client.body)
			continue
		}
		if tc.keyID != "" {
			if got := sealedKeyID(t, x); got != tc.keyID {
				t.Errorf("%s: key id %q, want %q", tc.body, got, tc.keyID)
			}
		}
	}
}

// TestRecordBinding: with context: "{path:1}", a ciphertext moved to another record fails to
// open; in its own record it opens.
func TestRecordBinding(t *testing.T) {
	e := newTestEnvWith(t, Options{}, identityPolicies)
	acme := envoyCfg{jwt: map[string]any{"tenant": "acme"}}
	e.mustDoCfg(acme, jsonReq("PUT", "/records/r1", "", `{"ssn":"900-00-0200"}`), 200)
	e.mustDoCfg(acme, jsonReq("PUT", "/records/r2", "", `{"ssn":"900-00-0201"}`), 200)
	r1, _ := e.app.Record("records", "r1")
	if x := e.mustDoCfg(acme, jsonReq("GET", "/records/r1", "", ""), 200); field(t, x.client.body, "ssn") != "900-00-0200" {
		t.Fatalf("own record: %s", x.client.body)
	}
	// Database write access: r1's ciphertext copied into r2.
	e.app.Put("records", "r2", []byte(`{"id":"r2","ssn":"`+field(t, r1, "ssn").(string)+`"}`))
	x := e.do(acme, jsonReq("GET", "/records/r2", "", ""))
	if x.client.status != 502 || errorMessage(t, x) != authFailed {
		t.Fatalf("moved ciphertext: %d %s", x.client.status, x.client.body)
	}
	// Without the binding (the patients-like jwt policy), the same move opens: the test tests something.
	e.mustDoCfg(acme, jsonReq("PUT", "/jwt/a", "", `{"ssn":"900-00-0202"}`), 200)
	a, _ := e.app.Record("jwt", "a")
	e.app.Put("jwt", "b", []byte(`{"id":"b","ssn":"`+field(t, a, "ssn").(string)+`"}`))
	if x := e.do(acme, jsonReq("GET", "/jwt/b", "", "")); x.client.status != 200 {
		t.Fatalf("unbound move: %d %s", x.client.status, x.client.body)
	}
}

// TestNamedPolicyNeedsAuthenticatedPeer: the route's x-rkms-policy metadata is honoured only
// from Envoy (a verified client certificate, or loopback); a direct client elsewhere that sends
// it is refused instead of choosing (or skipping) a policy.
func TestNamedPolicyNeedsAuthenticatedPeer(t *testing.T) {
	remote := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 5), Port: 4242}
	verified := credentials.TLSInfo{State: tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{}}}}}
	for _, tc := range []struct {
		name string
		peer *peer.Peer
		want bool
	}{
		{"loopback", &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv6loopback}}, true},
		{"remote plaintext", &peer.Peer{Addr: remote}, false},
		{"remote TLS without a client certificate", &peer.Peer{Addr: remote, AuthInfo: credentials.TLSInfo{}}, false},
		{"remote mTLS", &peer.Peer{Addr: remote, AuthInfo: verified}, true},
		{"unix socket", &peer.Peer{Addr: &net.UnixAddr{Name: "/run/rkms.sock", Net: "unix"}}, true},
	} {
		if got := authenticatedPeer(peer.NewContext(context.Background(), tc.peer)); got != tc.want {
			t.Errorf("%s: authenticated %v, want %v", tc.name, got, tc.want)
		}
	}
	if authenticatedPeer(context.Background()) {
		t.Error("no peer: authenticated")
	}
	srv, err := NewServer(loadPolicies(t), newFakeKeys(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := metadata.NewIncomingContext(peer.NewContext(t.Context(), &peer.Peer{Addr: remote}), metadata.Pairs(PolicyMetadataKey, "orders"))
	p := srv.newProcessor(ctx)
	defer srv.freeProcessor(p)
	resp, err := p.handle(ctx, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
		Headers: hdrs{{":method", "GET"}, {":path", "/orders/1"}}.proto(), EndOfStream: true}}})
	if err != nil || resp.GetImmediateResponse().GetStatus().GetCode() != 500 {
		t.Fatalf("named policy from a remote plaintext peer: %v, %v; want a 500 refusal", resp, err)
	}
}
