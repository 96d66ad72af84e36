package app

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/rkms/rkms/extproc"
)

// TestServerKeysClasses: the admin API's answers become the extproc.Keys error classes that
// the transform maps as ext_proc does (a missing or deleted key under a ciphertext is
// "authentication failed", a deleted id is never re-created by a seal), the query asks for
// what each method needs, and an answer with another version than asked is refused.
func TestServerKeysClasses(t *testing.T) {
	const key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" // 32 bytes
	tests := []struct {
		name   string
		status int
		body   string
		call   func(*serverKeys) error
		query  string
		want   error // nil: success
	}{
		{"current", 200, `{"id":"t","key":"` + key + `","version":3}`,
			func(s *serverKeys) error { _, err := s.Current(context.Background(), "t"); return err }, "id=t", nil},
		{"lookup never creates", 200, `{"id":"t","key":"` + key + `","version":3}`,
			func(s *serverKeys) error { _, err := s.Lookup(context.Background(), "t"); return err }, "create=false&id=t", nil},
		{"version", 200, `{"id":"t","key":"` + key + `","version":2}`,
			func(s *serverKeys) error { _, err := s.Version(context.Background(), "t", 2); return err }, "create=false&id=t&version=2", nil},
		{"version answered with another", 200, `{"id":"t","key":"` + key + `","version":3}`,
			func(s *serverKeys) error { _, err := s.Version(context.Background(), "t", 2); return err }, "", extproc.ErrKeyUnavailable},
		{"version not found", 404, `{"error":"not found"}`,
			func(s *serverKeys) error { _, err := s.Version(context.Background(), "t", 9); return err }, "", extproc.ErrKeyNotFound},
		{"lookup not found", 404, `{"error":"not found"}`,
			func(s *serverKeys) error { _, err := s.Lookup(context.Background(), "t"); return err }, "", extproc.ErrKeyUnknown},
		{"current of a deleted id", 410, `{"error":"deleted"}`,
			func(s *serverKeys) error { _, err := s.Current(context.Background(), "t"); return err }, "", extproc.ErrKeyUnknown},
		{"version of a deleted id", 410, `{"error":"deleted"}`,
			func(s *serverKeys) error { _, err := s.Version(context.Background(), "t", 1); return err }, "", extproc.ErrKeyNotFound},
		{"creation limited", 429, `{"error":"key creation rate limited: retry later"}`,
			func(s *serverKeys) error { _, err := s.Current(context.Background(), "t"); return err }, "", extproc.ErrKeyCreateLimited},
		{"unavailable", 503, `{"error":"unavailable"}`,
			func(s *serverKeys) error { _, err := s.Current(context.Background(), "t"); return err }, "", extproc.ErrKeyUnavailable},
		{"answer for another id", 200, `{"id":"u","key":"` + key + `","version":1}`,
			func(s *serverKeys) error { _, err := s.Current(context.Background(), "t"); return err }, "", errAny},
		{"short key", 200, `{"id":"t","key":"AAEC","version":1}`,
			func(s *serverKeys) error { _, err := s.Current(context.Background(), "t"); return err }, "", errAny},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var query string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/key" || r.Header.Get("Authorization") != "Bearer tok" {
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				query = r.URL.RawQuery
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			u, _ := url.Parse(srv.URL)
			err := tc.call(&serverKeys{base: u, token: "tok", client: srv.Client()})
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("error %v", err)
			case tc.want == errAny && err == nil, tc.want != nil && tc.want != errAny && !errors.Is(err, tc.want):
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if tc.query != "" && query != tc.query {
				t.Errorf("query %q, want %q", query, tc.query)
			}
			if err != nil && strings.Contains(err.Error(), key) {
				t.Errorf("the key is in the error: %v", err)
			}
		})
	}
}

// errAny stands for "some error" in the table above.
var errAny = errors.New("any error")
