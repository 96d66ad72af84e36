package admin

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rkms/rkms/internal/keyservice"
	"github.com/rkms/rkms/keyring/keyringtest"
)

// TestQueryDefect7: `+` is a key id character (envelope.ValidateKeyID), so the admin API reads
// the raw query without turning `+` into a space; unknown query parameters are refused with 400
// naming them instead of being ignored.
func TestQueryDefect7(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		target     string
		wantStatus int
		wantID     string // the id in the response
		wantError  string // substring of the error
	}{
		{"plus is a plus", "GET", "/key?id=a+b", 200, "a+b", ""},
		{"escaped plus", "GET", "/key?id=a%2Bb", 200, "a+b", ""},
		{"plus in rotate", "POST", "/key/rotate?id=p+q", 200, "p+q", ""},
		{"escaped space is invalid", "GET", "/key?id=a%20b", 400, "", "invalid key id"},
		{"unknown parameter", "GET", "/key?id=a&colour=red", 400, "", `unknown query parameter "colour"`},
		{"unknown parameters sorted", "GET", "/key?zeta=1&id=a&alpha=2", 400, "", `unknown query parameters "alpha", "zeta"`},
		{"rotate takes no version", "POST", "/key/rotate?id=a&version=1", 400, "", `unknown query parameter "version"`},
		{"delete takes no create", "DELETE", "/key?id=a&create=false", 400, "", `unknown query parameter "create"`},
		{"bad escape", "GET", "/key?id=a%zz", 400, "", "query"},
		{"semicolon", "GET", "/key?id=a;b=c", 400, "", "query"},
		{"repeated parameter", "GET", "/key?id=a&create=false&create=true", 400, "", `"create"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := keyringtest.NewFake()
			f.Put("p+q", 1)
			f.Put("a", 1)
			h, err := newHandler(f, keyservice.Options{Token: token}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(tc.method, tc.target, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.wantStatus, rec.Body)
			}
			var body struct {
				ID    string `json:"id"`
				Error string `json:"error"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %s: %v", rec.Body, err)
			}
			if body.ID != tc.wantID || !strings.Contains(body.Error, tc.wantError) {
				t.Fatalf("body %s, want id %q, error containing %q", rec.Body, tc.wantID, tc.wantError)
			}
		})
	}
}
