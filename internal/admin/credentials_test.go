package admin

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rkms/rkms/internal/access"
	"github.com/rkms/rkms/internal/keyservice"
	"github.com/rkms/rkms/internal/testing/tlstest"
	"github.com/rkms/rkms/internal/tlsconf"
	"github.com/rkms/rkms/keyring/keyringtest"
)

const (
	readerToken = "reader-token-0123456789"
	gitopsURI   = "spiffe://cluster/ns/ops/sa/gitops"
)

// credentials: reader may read tenant- ids (never create), gitops (client certificate) may only
// rotate.
var credentials = []keyservice.Credential{
	{Principal: access.Principal{Name: "reader", Allow: []string{access.Read}, IDPrefixes: []string{"tenant-"}}, Token: readerToken},
	{Principal: access.Principal{Name: "gitops", Allow: []string{access.Rotate}}, Subject: gitopsURI},
}

// TestForbidden: an authenticated caller whose credential does not allow the operation on that
// id gets 403 with a message naming the missing permission (never 401: its login is fine).
func TestForbidden(t *testing.T) {
	for _, tc := range []struct {
		method, target, auth string
		want                 int
		wantError            string
	}{
		{"GET", "/key?id=tenant-a", readerToken, 200, ""},
		{"GET", "/api/v1/key?id=tenant-a", readerToken, 200, ""},
		{"GET", "/key?id=other", readerToken, 403, "read permission"},
		{"GET", "/key?id=tenant-new", readerToken, 403, "create permission"},
		{"POST", "/key/rotate?id=tenant-a", readerToken, 403, "rotate permission"},
		{"DELETE", "/key?id=tenant-a", readerToken, 403, "delete permission"},
		{"DELETE", "/key?id=tenant-a", token, 204, ""},
		{"POST", "/key/rotate?id=tenant-a", "nope-0123456789abcdef", 401, "bearer"},
	} {
		t.Run(tc.method+" "+tc.target+" "+tc.auth[:4], func(t *testing.T) {
			f := keyringtest.NewFake()
			f.Put("tenant-a", 1)
			h, err := newHandler(f, keyservice.Options{Token: token, Credentials: credentials}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(tc.method, tc.target, nil)
			req.Header.Set("Authorization", "Bearer "+tc.auth)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.want || !strings.Contains(rec.Body.String(), tc.wantError) {
				t.Fatalf("%d %s, want %d %q", rec.Code, rec.Body, tc.want, tc.wantError)
			}
			if tc.want == 403 && rec.Header().Get("WWW-Authenticate") != "" {
				t.Error("403 asks for authentication")
			}
		})
	}
}

// TestCertificateCredential: over a real mutual-TLS listener, a client certificate whose URI
// SAN is a credential's mtls_subject authenticates without a token, with that credential's
// permissions; another certificate from the same CA does not.
func TestCertificateCredential(t *testing.T) {
	ca := tlstest.NewCA(t, "ca")
	srv := ca.Server(t, "server")
	scfg, err := tlsconf.New(tlsconf.Files{CertFile: srv.CertFile, KeyFile: srv.KeyFile, ClientCAFile: ca.File}, tlsconf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := keyringtest.NewFake()
	f.Put("tenant-a", 1)
	h, err := newHandler(f, keyservice.Options{Credentials: credentials}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(h)
	ts.TLS = scfg
	ts.StartTLS()
	t.Cleanup(ts.Close)
	client := func(p tlstest.Pair) *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: tlstest.ClientConfig(ca.Pool(), p.TLS)}}
	}
	gitops := client(ca.ClientSANs(t, "gitops", []string{gitopsURI}, nil))
	stranger := client(ca.ClientSANs(t, "stranger", []string{"spiffe://cluster/ns/x/sa/y"}, nil))
	for _, tc := range []struct {
		c              *http.Client
		method, target string
		want           int
	}{
		{gitops, "POST", "/key/rotate?id=tenant-a", 200},
		{gitops, "GET", "/key?id=tenant-a", 403},
		{stranger, "POST", "/key/rotate?id=tenant-a", 401},
	} {
		req, _ := http.NewRequest(tc.method, ts.URL+tc.target, nil)
		resp, err := tc.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.target, resp.StatusCode, tc.want)
		}
	}
}
