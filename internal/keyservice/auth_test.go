package keyservice

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/rkms/rkms/internal/access"
	"github.com/rkms/rkms/internal/audit"
	"github.com/rkms/rkms/keyring/keyringtest"
)

const (
	opsToken     = "ops-token-0123456789abcdef"
	billingToken = "billing-token-0123456789"
	gitopsURI    = "spiffe://cluster/ns/ops/sa/gitops"
)

// testCredentials: ops may do everything, billing-svc only read tenant- ids, reader may read
// and create anything, gitops (by certificate) only rotate.
func testCredentials() []Credential {
	return []Credential{
		{Principal: access.Principal{Name: "ops", Allow: access.Operations}, Token: opsToken},
		{Principal: access.Principal{Name: "billing-svc", Allow: []string{access.Read}, IDPrefixes: []string{"tenant-"}}, Token: billingToken},
		{Principal: access.Principal{Name: "reader", Allow: []string{access.Read, access.Create}}, Token: "reader-token-0123456789"},
		{Principal: access.Principal{Name: "gitops", Allow: []string{access.Rotate}}, Subject: gitopsURI},
	}
}

func TestNewCredentialsRejects(t *testing.T) {
	ok := access.Principal{Name: "a", Allow: []string{access.Read}}
	for _, tc := range []struct {
		name  string
		creds []Credential
		want  string
	}{
		{"none", nil, "no credentials"},
		{"bad name", []Credential{{Principal: access.Principal{Name: "has space"}, Token: opsToken}}, "credential name"},
		{"duplicate name", []Credential{{Principal: ok, Token: opsToken}, {Principal: ok, Token: billingToken}}, "duplicate credential name"},
		{"unknown op", []Credential{{Principal: access.Principal{Name: "a", Allow: []string{"purge"}}, Token: opsToken}}, `unknown operation "purge"`},
		{"neither", []Credential{{Principal: ok}}, "exactly one"},
		{"both", []Credential{{Principal: ok, Token: opsToken, Subject: gitopsURI}}, "exactly one"},
		{"shared token", []Credential{{Principal: ok, Token: opsToken}, {Principal: access.Principal{Name: "b"}, Token: opsToken}}, "token shared"},
		{"shared subject", []Credential{{Principal: ok, Subject: gitopsURI}, {Principal: access.Principal{Name: "b"}, Subject: gitopsURI}}, "subject shared"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(keyringtest.NewFake(), Options{Credentials: tc.creds})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), opsToken) {
				t.Fatalf("error shows a token: %v", err)
			}
		})
	}
	// The single token is the credential "admin": a named credential may not take that name.
	_, err := New(keyringtest.NewFake(), Options{Token: token, Credentials: []Credential{{Principal: access.Principal{Name: "admin"}, Token: opsToken}}})
	if err == nil {
		t.Error("a credential named admin next to the single token was accepted")
	}
}

// TestAuthenticatePrincipal: each token, or certificate identity, yields its own principal; a
// wrong token is refused even with a matching certificate; a certificate matching two
// credentials is refused; the single token is "admin" with every operation.
func TestAuthenticatePrincipal(t *testing.T) {
	creds := append(testCredentials(), Credential{Principal: access.Principal{Name: "other", Allow: []string{access.Read}}, Subject: "dns.example"})
	s, err := New(keyringtest.NewFake(), Options{Token: token, Credentials: creds})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		c    Caller
		want string // principal; "" for a refusal
	}{
		{"ops token", Caller{Authorization: "Bearer " + opsToken}, "ops"},
		{"billing token", Caller{Authorization: "bearer " + billingToken}, "billing-svc"},
		{"single token", Caller{Authorization: "Bearer " + token}, access.LegacyName},
		{"certificate URI", Caller{Identities: []string{gitopsURI}}, "gitops"},
		{"certificate DNS", Caller{Identities: []string{"x.example", "dns.example"}}, "other"},
		{"token wins over certificate", Caller{Identities: []string{gitopsURI}, Authorization: "Bearer " + opsToken}, "ops"},
		{"wrong token with a matching certificate", Caller{Identities: []string{gitopsURI}, Authorization: "Bearer nope"}, ""},
		{"ambiguous certificate", Caller{Identities: []string{gitopsURI, "dns.example"}}, ""},
		{"unknown certificate", Caller{Identities: []string{"spiffe://cluster/ns/x/sa/y"}}, ""},
		{"nothing", Caller{}, ""},
		{"token as a subject", Caller{Identities: []string{opsToken}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.API, tc.c.Remote = audit.APIHTTP, "192.0.2.9:1"
			sess, err := s.Authenticate(context.Background(), tc.c, "", "")
			switch {
			case tc.want == "" && Classify(err).Class != Unauthenticated:
				t.Fatalf("%v, want unauthenticated", err)
			case tc.want != "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && sess.Principal().Name != tc.want:
				t.Fatalf("principal %q, want %q", sess.Principal().Name, tc.want)
			}
		})
	}
	sess, err := s.Authenticate(context.Background(), Caller{Authorization: "Bearer " + token}, "", "")
	if err != nil || !slices.Equal(sess.Principal().Allow, access.Operations) || len(sess.Principal().IDPrefixes) != 0 {
		t.Fatalf("single token: %+v %v, want every operation on every id", sess, err)
	}
}

// TestPermissions: principal × operation × id → allowed or Forbidden, each refusal audited as
// denied under the principal's name and counted for OnForbidden; a get of an absent key needs
// create.
func TestPermissions(t *testing.T) {
	type result int
	const (
		allowed result = iota
		forbidden
		notFound
	)
	tests := []struct {
		who    string // token
		op, id string
		want   result
		denyOp string // the op of the refusal record (a get refused for create says create)
	}{
		{opsToken, access.Read, "tenant-a", allowed, ""},
		{opsToken, access.Read, "new-key", allowed, ""}, // created
		{opsToken, access.Rotate, "tenant-a", allowed, ""},
		{opsToken, access.Delete, "other", allowed, ""},
		{billingToken, access.Read, "tenant-a", allowed, ""},
		{billingToken, access.Read, "tenant-absent", forbidden, access.Create},
		{billingToken, access.Read, "other", forbidden, access.Read},
		{billingToken, access.Rotate, "tenant-a", forbidden, access.Rotate},
		{billingToken, access.Delete, "tenant-a", forbidden, access.Delete},
		{"reader-token-0123456789", access.Read, "fresh", allowed, ""},
		{"reader-token-0123456789", access.Rotate, "other", forbidden, access.Rotate},
		{"reader-token-0123456789", access.Delete, "other", forbidden, access.Delete},
		{token, access.Read, "anything", allowed, ""},
		{token, access.Delete, "absent", notFound, ""},
	}
	for _, tc := range tests {
		t.Run(tc.who[:4]+"/"+tc.op+"/"+tc.id, func(t *testing.T) {
			var buf bytes.Buffer
			f := keyringtest.NewFake()
			f.Put("tenant-a", 1)
			f.Put("other", 1)
			var denied []string
			s, err := New(f, Options{Token: token, Credentials: testCredentials(), Logger: slog.New(slog.NewJSONHandler(&buf, nil)),
				OnForbidden: func(p, op string) { denied = append(denied, p+":"+op) }})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			sess, err := s.Authenticate(ctx, Caller{API: audit.APIHTTP, Remote: "192.0.2.1:1", Authorization: "Bearer " + tc.who}, tc.op, tc.id)
			if err != nil {
				t.Fatal(err)
			}
			switch tc.op {
			case access.Read:
				err = sess.Get(ctx, tc.id, func(string, uint32, []byte) {})
			case access.Rotate:
				_, err = sess.Rotate(ctx, tc.id)
			case access.Delete:
				err = sess.Delete(ctx, tc.id)
			}
			switch tc.want {
			case allowed:
				if err != nil {
					t.Fatalf("%v, want allowed", err)
				}
			case notFound:
				if Classify(err).Class != NotFound {
					t.Fatalf("%v, want not found", err)
				}
			case forbidden:
				e := Classify(err)
				if e.Class != Forbidden || !strings.Contains(e.Msg, tc.denyOp) || strings.Contains(e.Msg, tc.id) {
					t.Fatalf("%v (%q), want forbidden naming %s and not the id", err, e.Msg, tc.denyOp)
				}
				var rec map[string]any
				lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
				if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rec); err != nil {
					t.Fatal(err)
				}
				if rec["op"] != tc.denyOp || rec["result"] != audit.ResultDenied || rec["principal"] != sess.Principal().Name || rec["key_id"] != tc.id {
					t.Errorf("refusal record: %v", rec)
				}
				if len(denied) != 1 || denied[0] != sess.Principal().Name+":"+tc.denyOp {
					t.Errorf("OnForbidden: %v", denied)
				}
				if tc.denyOp == access.Create {
					if _, err := f.Lookup(ctx, tc.id); err == nil {
						t.Error("a principal without create created the key")
					}
				}
			}
			if tc.want != forbidden && strings.Contains(buf.String(), `"result":"denied"`) {
				t.Errorf("denied record for an allowed call: %s", buf.String())
			}
		})
	}
}

// TestAuditedUnderPrincipal: an allowed operation's record carries the principal's name; a
// refused login carries none.
func TestAuditedUnderPrincipal(t *testing.T) {
	var buf bytes.Buffer
	f := keyringtest.NewFake()
	f.Put("tenant-a", 1)
	s, err := New(f, Options{Credentials: testCredentials(), Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sess, err := s.Authenticate(ctx, Caller{API: audit.APIGRPC, Identities: []string{gitopsURI}}, audit.OpRotate, "tenant-a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sess.Rotate(ctx, "tenant-a"); err != nil {
		t.Fatal(err)
	}
	_, _ = s.Authenticate(ctx, Caller{API: audit.APIGRPC, Authorization: "Bearer nope"}, audit.OpRotate, "tenant-a")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"principal":"gitops"`) || !strings.Contains(lines[0], `"result":"ok"`) ||
		strings.Contains(lines[1], "principal") || !strings.Contains(lines[1], `"result":"denied"`) {
		t.Fatalf("records:\n%s", buf.String())
	}
}

// TestTokenMatchesAnyPosition: the match is selected without an early exit (the loop compares
// every token whichever matches), and still finds the credential at every position.
func TestTokenMatchesAnyPosition(t *testing.T) {
	var creds []Credential
	for i := range 5 {
		n := string(rune('a' + i))
		creds = append(creds, Credential{Principal: access.Principal{Name: n, Allow: []string{access.Read}}, Token: strings.Repeat(n, 20)})
	}
	c, err := newCredentials(creds)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		n := string(rune('a' + i))
		if p, ok := c.byToken("Bearer " + strings.Repeat(n, 20)); !ok || p.Name != n {
			t.Errorf("token %d: %q %v", i, p.Name, ok)
		}
	}
	if _, ok := c.byToken("Bearer " + strings.Repeat("z", 20)); ok {
		t.Error("unknown token matched")
	}
}

func TestTLSIdentities(t *testing.T) {
	u, _ := url.Parse(gitopsURI)
	leaf := &x509.Certificate{URIs: []*url.URL{u}, DNSNames: []string{"gitops.example"}}
	verified := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}, VerifiedChains: [][]*x509.Certificate{{leaf}}}
	if got := TLSIdentities(verified); !slices.Equal(got, []string{gitopsURI, "gitops.example"}) {
		t.Errorf("verified: %v", got)
	}
	unverified := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}
	if got := TLSIdentities(unverified); got != nil {
		t.Errorf("unverified certificate gave identities %v", got)
	}
	if got := TLSIdentities(nil); got != nil {
		t.Errorf("plaintext: %v", got)
	}
}

// TestOperationNames: the audit op names are the permission names, so a record's op is what a
// credential's allow lists.
func TestOperationNames(t *testing.T) {
	for _, op := range []string{audit.OpRead, audit.OpCreate, audit.OpRotate, audit.OpDelete} {
		if !access.Known(op) {
			t.Errorf("audit op %q is no access operation", op)
		}
	}
}
