package extproc

import (
	"bytes"
	"crypto/tls"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/envoy"
	"github.com/rkms/rkms/extproc/policy"
	"github.com/rkms/rkms/internal/devjwt"
	"github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/internal/testing/envoytest"
	"github.com/rkms/rkms/internal/testing/tlstest"
)

// Who owns the data, through the real Envoy (envoy/ingress.yaml) and this server: the tenant
// of a token Envoy verified ({jwt:tenant}), never a client's x-tenant-id; the client
// certificate's SANs ({peer:uri_san}, {peer:dns_san}); and request ids that Envoy made.

// ownerPolicies are ingressPolicies plus two whose key ids name the client certificate.
// rkms selects them by its own match rules (ingress.yaml's catch-all route).
func ownerPolicies(t testing.TB) []policy.Config {
	ssn := []policy.Field{{Path: "$.ssn"}}
	return append(ingressPolicies(t),
		policy.Config{Name: "by-uri-san", Match: policy.Match{PathPrefix: "/workloads"}, KeyID: "svc-{peer:uri_san}",
			Request: policy.Direction{Encrypt: ssn}, Response: policy.Direction{Decrypt: ssn}},
		policy.Config{Name: "by-dns-san", Match: policy.Match{PathPrefix: "/hosts"}, KeyID: "host-{peer:dns_san}",
			Request: policy.Direction{Encrypt: ssn}, Response: policy.Direction{Decrypt: ssn}},
	)
}

// keyIDOf returns the key id in the header of the ciphertext at field of a stored record.
func keyIDOf(t *testing.T, record []byte, path string) string {
	t.Helper()
	ct, _ := field(t, record, path).(string)
	h, err := envelope.Parse([]byte(ct))
	if err != nil {
		t.Fatalf("%s = %q: %v", path, ct, err)
	}
	return h.KeyID
}

func TestEnvoyVerifiedTenants(t *testing.T) {
	testenv.Integration(t)
	cfg, err := envoy.Config("ingress.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := startStackWith(t, cfg, Options{}, stackConfig{upstream: "app", policies: ownerPolicies(t)})
	acme, globex := envoytest.Bearer(t, "acme"), envoytest.Bearer(t, "globex")

	// acme writes, claiming to be globex with the header: the token decides.
	r := s.do(t, "POST", "/patients", patient, append(slices.Clone(acme), "x-tenant-id", "globex")...)
	if r.status != 201 {
		t.Fatalf("POST as acme: %d %s", r.status, r.body)
	}
	id, _ := field(t, r.body, "id").(string)
	stored, _ := s.app.Record("patients", id)
	if k := keyIDOf(t, stored, "ssn"); k != "tenant-acme" {
		t.Errorf("acme's record sealed under %q, want tenant-acme (a client-sent x-tenant-id must change nothing)", k)
	}
	got := s.app.Received()
	if h := got[len(got)-1].Header; !slices.Equal(h.Values("X-Tenant-Id"), []string{"acme"}) || h.Get("Authorization") != "" {
		t.Errorf("the app got x-tenant-id %q and authorization %q: want only the token's tenant, and no token",
			h.Values("X-Tenant-Id"), h.Get("Authorization"))
	}

	t.Run("the owner reads", func(t *testing.T) {
		if r := s.do(t, "GET", "/patients/"+id, "", acme...); r.status != 200 || !bytes.Contains(r.body, []byte(`"ssn":"123-45-6789"`)) {
			t.Errorf("acme reads its record: %d %s", r.status, r.body)
		}
	})
	t.Run("another tenant cannot, whatever it claims", func(t *testing.T) {
		for name, h := range map[string][]string{
			"globex":                      globex,
			"globex claiming acme":        append(slices.Clone(globex), "x-tenant-id", "acme"),
			"globex claiming acme, twice": append(slices.Clone(globex), "x-tenant-id", "acme", "X-Tenant-ID", "acme"),
		} {
			r := s.do(t, "GET", "/patients/"+id, "", h...)
			if r.status != 502 || bytes.Contains(r.body, []byte("123-45-6789")) {
				t.Errorf("%s: %d %s, want 502 without the plaintext", name, r.status, r.body)
			}
		}
	})
	t.Run("bad tokens are refused before rkms", func(t *testing.T) {
		n, seen := len(s.app.Received()), requestsSeen(s.streams)
		for _, bt := range envoytest.BadTokens(t, "acme") {
			for _, req := range [][3]string{{"POST", "/patients", patient}, {"GET", "/patients/" + id, ""}} {
				r := s.do(t, req[0], req[1], req[2], "Authorization", "Bearer "+bt.Token)
				if r.status != bt.Status || string(r.body) != `{"error":"`+envoytest.ErrInvalidToken+"\"}\n" {
					t.Errorf("%s %s with a %s token: %d %s, want %d {\"error\":%q}", req[0], req[1], bt.Name, r.status, r.body, bt.Status, envoytest.ErrInvalidToken)
				}
			}
		}
		if len(s.app.Received()) != n {
			t.Errorf("refused requests reached the app: %v", s.app.Received()[n:])
		}
		// rkms sees Envoy's 401 on its way out (and passes it), never the request.
		if got := requestsSeen(s.streams); got != seen {
			t.Errorf("rkms received %d refused requests' headers", got-seen)
		}
	})
	t.Run("a valid token without the claim names no key", func(t *testing.T) {
		iss := envoytest.TestIssuer()
		for name, edit := range map[string]func(devjwt.Claims){
			"no tenant claim":  func(c devjwt.Claims) { delete(c, devjwt.TenantClaim) },
			"tenant an object": func(c devjwt.Claims) { c[devjwt.TenantClaim] = map[string]any{"id": "acme"} },
		} {
			c := iss.Tenant("acme", time.Now(), time.Hour)
			edit(c)
			tok, err := iss.Sign(c)
			if err != nil {
				t.Fatal(err)
			}
			n := len(s.app.Received())
			if r := s.do(t, "POST", "/patients", patient, "Authorization", "Bearer "+tok); r.status != 400 || len(s.app.Received()) != n {
				t.Errorf("%s: %d %s, want rkms's 400 and nothing at the app", name, r.status, r.body)
			}
		}
	})
	t.Run("request ids are Envoy's", func(t *testing.T) {
		wantEnvoyRequestID(t, s, acme, false)
	})
	t.Run("no certificate, no peer identity", func(t *testing.T) {
		for _, path := range []string{"/workloads", "/hosts"} {
			r := s.do(t, "POST", path, `{"ssn":"123-45-6789"}`, "X-Forwarded-Client-Cert", "URI=spiffe://example.org/ns/shop/sa/orders;DNS=orders.shop.svc")
			if r.status != 400 {
				t.Errorf("POST %s on the plaintext listener: %d %s, want 400 (no key id source)", path, r.status, r.body)
			}
		}
	})
}

// TestEnvoyTrustedRequestID: behind ingress.yaml, which replaces every client's x-request-id,
// extproc.trust_request_id is safe: rkms's request id (logs, audit) is the one Envoy made, the
// same the app receives, and never the client's.
func TestEnvoyTrustedRequestID(t *testing.T) {
	testenv.Integration(t)
	s := startStack(t, "ingress.yaml", Options{TrustRequestID: true})
	wantEnvoyRequestID(t, s, envoytest.Bearer(t, "acme"), true)
}

// wantEnvoyRequestID sends a request with a client-chosen x-request-id through s and checks that
// the app got a fresh UUID instead, that rkms never logged the client's id as its request id,
// and, when rkms trusts Envoy's id, that it logged the app's.
func wantEnvoyRequestID(t *testing.T, s *stack, auth []string, trusted bool) {
	t.Helper()
	const clientID = "client-chosen-request-id-4242"
	r := s.do(t, "POST", "/patients", patient, append(slices.Clone(auth), "X-Request-Id", clientID)...)
	if r.status != 201 {
		t.Fatalf("POST: %d %s", r.status, r.body)
	}
	got := s.app.Received()
	appID := got[len(got)-1].Header.Get("X-Request-Id")
	if appID == clientID || len(appID) != 36 {
		t.Errorf("the app got x-request-id %q, want a UUID Envoy made", appID)
	}
	logs := s.logs.String()
	if regexp.MustCompile(`(^|\s)request_id=` + clientID).MatchString(logs) {
		t.Errorf("rkms logged the client's id as its request id:\n%s", logs)
	}
	if trusted && !regexp.MustCompile(`(^|\s)request_id=`+appID+`(\s|$)`).MatchString(logs) {
		t.Errorf("rkms (trust_request_id) did not log Envoy's id %s as its request id:\n%s", appID, logs)
	}
}

// TestEnvoyPeerIdentity runs ingress.yaml with envoy/README.md's downstream mutual TLS block:
// the client certificate's first URI SAN and DNS SAN are key id sources.
func TestEnvoyPeerIdentity(t *testing.T) {
	testenv.Integration(t)
	ca := tlstest.NewCA(t, "workloads")
	server := ca.Server(t, "envoy")
	orders := ca.ClientSANs(t, "orders", []string{"spiffe://example.org/ns/shop/sa/orders"}, []string{"orders.shop.svc"})
	billing := ca.ClientSANs(t, "billing", []string{"spiffe://example.org/ns/shop/sa/billing"}, []string{"billing.shop.svc"})
	cfg, err := envoy.Config("ingress.yaml")
	if err != nil {
		t.Fatal(err)
	}
	withTLS := envoytest.WithListenerMTLS(t, string(cfg))
	s := startStackWith(t, []byte(withTLS), Options{}, stackConfig{upstream: "app", policies: ownerPolicies(t),
		files:     map[string]string{"listener_cert": server.CertFile, "listener_key": server.KeyFile, "clients_ca": ca.File},
		clientTLS: tlstest.ClientConfig(ca.Pool(), orders.TLS)})
	as := func(p tlstest.Pair) *stack {
		c := *s
		c.client = &http.Client{Transport: &http.Transport{TLSClientConfig: tlstest.ClientConfig(ca.Pool(), p.TLS)}}
		return &c
	}

	for _, tc := range []struct{ path, wantKey string }{
		{"/workloads", "svc-spiffe://example.org/ns/shop/sa/orders"},
		{"/hosts", "host-orders.shop.svc"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			r := s.do(t, "POST", tc.path, `{"ssn":"123-45-6789"}`)
			if r.status != 201 || string(field(t, r.body, "ssn").(string)) != "123-45-6789" {
				t.Fatalf("POST as orders: %d %s", r.status, r.body)
			}
			id, _ := field(t, r.body, "id").(string)
			stored, _ := s.app.Record(strings.TrimPrefix(tc.path, "/"), id)
			if k := keyIDOf(t, stored, "ssn"); k != tc.wantKey {
				t.Errorf("sealed under %q, want %q", k, tc.wantKey)
			}
			if r := s.do(t, "GET", tc.path+"/"+id, ""); r.status != 200 || !bytes.Contains(r.body, []byte("123-45-6789")) {
				t.Errorf("orders reads it back: %d %s", r.status, r.body)
			}
			if r := as(billing).do(t, "GET", tc.path+"/"+id, ""); r.status != 502 || bytes.Contains(r.body, []byte("123-45-6789")) {
				t.Errorf("billing reads orders' record: %d %s, want 502", r.status, r.body)
			}
		})
	}
	t.Run("no client certificate", func(t *testing.T) {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}}}
		resp, err := c.Get(s.base + "/workloads/1")
		if err == nil {
			resp.Body.Close()
			t.Errorf("without a client certificate: %s, want the handshake refused", resp.Status)
		}
	})
}

// requestsSeen counts the ext_proc streams on which rkms received request headers.
func requestsSeen(l *streamLog) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.streams {
		r.mu.Lock()
		if len(r.recv) > 0 && strings.HasPrefix(r.recv[0], "request_headers") {
			n++
		}
		r.mu.Unlock()
	}
	return n
}
