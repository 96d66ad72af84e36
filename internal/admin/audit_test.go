package admin

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rkms/rkms/internal/keyservice"
	"github.com/rkms/rkms/internal/testing/tlstest"
	"github.com/rkms/rkms/keyring/keyringtest"
)

// TestAuditRecords: every /key call, refused ones included, gives one audit record naming the
// operation, the key id (when valid), the version, the result and the caller.
func TestAuditRecords(t *testing.T) {
	var buf bytes.Buffer
	h, err := newHandler(keyringtest.NewFake(), keyservice.Options{Token: token, Logger: slog.New(slog.NewJSONHandler(&buf, nil))}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ca := tlstest.NewCA(t, "ca")
	ops := ca.Client(t, "ops")
	bearer := "Bearer " + token
	calls := []struct {
		method, target, auth string
		mtls                 bool
		want                 map[string]any // nil: no record
	}{
		{"GET", "/key?id=alice", bearer, true, map[string]any{"op": "read", "key_id": "alice", "version": 1.0, "result": "ok", "subject": "CN=ops,O=rkms tests"}},
		{"POST", "/key/rotate?id=alice", bearer, false, map[string]any{"op": "rotate", "key_id": "alice", "version": 2.0, "result": "ok"}},
		{"GET", "/api/v1/key?id=alice", "", false, map[string]any{"op": "read", "key_id": "alice", "result": "denied"}},
		{"DELETE", "/key?id=alice", "Bearer wrong", false, map[string]any{"op": "delete", "key_id": "alice", "result": "denied"}},
		{"POST", "/key/rotate?id=alice", "", false, map[string]any{"op": "rotate", "key_id": "alice", "result": "denied"}},
		{"GET", "/key?id=a%20b", bearer, false, map[string]any{"op": "read", "result": "invalid"}},
		{"GET", "/key", bearer, false, map[string]any{"op": "read", "result": "invalid"}},
		{"POST", "/key/rotate?id=nobody", bearer, false, map[string]any{"op": "rotate", "key_id": "nobody", "result": "not_found"}},
		{"DELETE", "/key?id=alice", bearer, false, map[string]any{"op": "delete", "key_id": "alice", "result": "ok"}},
		{"PUT", "/key?id=alice", "", false, nil}, // 401 for a method that is no key operation: nothing to audit
		{"GET", "/healthz", "", false, nil},      // not a key operation
	}
	var want []map[string]any
	for _, c := range calls {
		req := httptest.NewRequest(c.method, c.target, nil)
		req.RemoteAddr = "192.0.2.7:4242"
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		if c.mtls {
			req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{ops.Cert}, VerifiedChains: [][]*x509.Certificate{{ops.Cert, ca.Cert}}}
		}
		h.ServeHTTP(httptest.NewRecorder(), req)
		if c.want != nil {
			want = append(want, c.want)
		}
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d records, want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		if rec["msg"] != "audit" || rec["logger"] != "audit" || rec["api"] != "http" || rec["remote"] != "192.0.2.7:4242" {
			t.Errorf("record %d: caller fields wrong: %s", i, line)
		}
		for k, v := range want[i] {
			if rec[k] != v {
				t.Errorf("record %d: %s = %v, want %v (%s)", i, k, rec[k], v, line)
			}
		}
		if _, has := rec["key_id"]; has != (want[i]["key_id"] != nil) {
			t.Errorf("record %d: key_id presence wrong: %s", i, line)
		}
		if _, has := rec["subject"]; has != (want[i]["subject"] != nil) {
			t.Errorf("record %d: subject presence wrong: %s", i, line)
		}
	}
}

// TestBodyLimit: no endpoint reads a body, and one over the limit is refused before any handler.
func TestBodyLimit(t *testing.T) {
	h, err := newHandler(keyringtest.NewFake(), keyservice.Options{Token: token}, Options{MaxBodyBytes: 1024})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		size int
		want int
	}{
		{"small body ignored", 1024, http.StatusOK},
		{"over the limit", 1025, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/key?id=alice", strings.NewReader(strings.Repeat("x", tt.size)))
			req.Header.Set("Authorization", "Bearer "+token)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.want, rec.Body)
			}
			if tt.want == http.StatusRequestEntityTooLarge && !strings.Contains(rec.Body.String(), "request body too large") {
				t.Fatalf("body %s", rec.Body)
			}
		})
	}
}
