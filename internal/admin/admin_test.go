package admin

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rkms/rkms/internal/keyservice"
	"github.com/rkms/rkms/keyring"
	"github.com/rkms/rkms/keyring/keyringtest"
)

const token = "s3cret-token"

func TestAdminAPI(t *testing.T) {
	internal := errors.New("dial tcp 10.1.2.3:443: secret internals")
	tests := []struct {
		name       string
		method     string
		target     string
		auth       string
		setup      func(*keyringtest.Fake)
		wantStatus int
		wantError  string    // substring of the JSON error; "" for success
		header     [2]string // a response header and its value, if set
		check      func(t *testing.T, body []byte)
	}{
		{name: "get creates", method: "GET", target: "/key?id=alice", auth: "Bearer " + token, wantStatus: 200,
			check: func(t *testing.T, body []byte) {
				var r keyResponse
				if err := json.Unmarshal(body, &r); err != nil {
					t.Fatal(err)
				}
				k, err := base64.StdEncoding.DecodeString(r.Key)
				if r.ID != "alice" || r.Version != 1 || err != nil || len(k) != 32 {
					t.Fatalf("bad response %s", body)
				}
			}},
		{name: "v1 path", method: "GET", target: "/api/v1/key?id=alice", auth: "Bearer " + token, wantStatus: 200},
		{name: "scheme case-insensitive", method: "GET", target: "/key?id=alice", auth: "bearer " + token, wantStatus: 200},
		{name: "no token", method: "GET", target: "/key?id=alice", wantStatus: 401, wantError: "bearer"},
		{name: "wrong token", method: "GET", target: "/key?id=alice", auth: "Bearer nope", wantStatus: 401, wantError: "bearer"},
		{name: "token prefix", method: "GET", target: "/key?id=alice", auth: "Bearer " + token[:5], wantStatus: 401},
		{name: "basic auth", method: "GET", target: "/key?id=alice", auth: "Basic " + token, wantStatus: 401},
		{name: "v1 needs token", method: "GET", target: "/api/v1/key?id=alice", wantStatus: 401},
		{name: "rotate needs token", method: "POST", target: "/key/rotate?id=alice", wantStatus: 401},
		{name: "no id", method: "GET", target: "/key", auth: "Bearer " + token, wantStatus: 400, wantError: "id"},
		{name: "two ids", method: "GET", target: "/key?id=a&id=b", auth: "Bearer " + token, wantStatus: 400},
		{name: "bad id chars", method: "GET", target: "/key?id=a%20b", auth: "Bearer " + token, wantStatus: 400, wantError: "invalid key id"},
		{name: "id too long", method: "GET", target: "/key?id=" + strings.Repeat("a", 257), auth: "Bearer " + token, wantStatus: 400},
		{name: "delete absent", method: "DELETE", target: "/key?id=bob", auth: "Bearer " + token, wantStatus: 404, wantError: "not found"},
		{name: "delete", method: "DELETE", target: "/key?id=bob", auth: "Bearer " + token, wantStatus: 204,
			setup: func(f *keyringtest.Fake) { f.Put("bob", 1) }},
		{name: "rotate", method: "POST", target: "/key/rotate?id=bob", auth: "Bearer " + token, wantStatus: 200,
			setup: func(f *keyringtest.Fake) { f.Put("bob", 1) },
			check: func(t *testing.T, body []byte) {
				var r keyResponse
				if err := json.Unmarshal(body, &r); err != nil || r.Version != 2 || r.Key != "" {
					t.Fatalf("bad rotate response %s", body)
				}
			}},
		{name: "rotate absent", method: "POST", target: "/key/rotate?id=nobody", auth: "Bearer " + token, wantStatus: 404},
		{name: "rotate wrong method", method: "GET", target: "/key/rotate?id=bob", auth: "Bearer " + token, wantStatus: 405},
		{name: "key wrong method", method: "PUT", target: "/key?id=bob", auth: "Bearer " + token, wantStatus: 405},
		{name: "unavailable", method: "GET", target: "/key?id=alice", auth: "Bearer " + token, wantStatus: 503, wantError: "unavailable",
			setup: func(f *keyringtest.Fake) { f.Fail = fmt.Errorf("create: %w: %w", keyring.ErrUnavailable, internal) }},
		{name: "create limited", method: "GET", target: "/key?id=alice", auth: "Bearer " + token, wantStatus: 429, wantError: "rate limit",
			setup: func(f *keyringtest.Fake) {
				f.Fail = fmt.Errorf("create key: %w", &keyring.CreateLimitedError{RetryAfter: 3 * time.Second})
			},
			header: [2]string{"Retry-After", "3"}},
		{name: "internal hidden", method: "GET", target: "/key?id=alice", auth: "Bearer " + token, wantStatus: 500, wantError: "internal error",
			setup: func(f *keyringtest.Fake) { f.Fail = internal }},
		{name: "healthz open", method: "GET", target: "/healthz", wantStatus: 200},
		{name: "readyz", method: "GET", target: "/readyz", wantStatus: 200},
		{name: "not ready", method: "GET", target: "/readyz", wantStatus: 503,
			setup: func(f *keyringtest.Fake) { f.NotReady = keyring.ErrUnavailable }},
		{name: "unknown path", method: "GET", target: "/nope", wantStatus: 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := keyringtest.NewFake()
			if tc.setup != nil {
				tc.setup(f)
			}
			h, err := newHandler(f, keyservice.Options{Token: token}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(tc.method, tc.target, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			body, _ := io.ReadAll(rec.Body)
			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.wantStatus, body)
			}
			if tc.wantStatus != http.StatusNoContent && rec.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("content-type %q", rec.Header().Get("Content-Type"))
			}
			if rec.Code >= 400 {
				var e struct{ Error string }
				if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
					t.Fatalf("error body is not {\"error\": ...}: %s", body)
				}
				if !strings.Contains(e.Error, tc.wantError) {
					t.Fatalf("error %q does not mention %q", e.Error, tc.wantError)
				}
				if strings.Contains(string(body), "10.1.2.3") {
					t.Fatalf("internals leaked: %s", body)
				}
			}
			if tc.header[0] != "" && rec.Header().Get(tc.header[0]) != tc.header[1] {
				t.Fatalf("%s: %q, want %q", tc.header[0], rec.Header().Get(tc.header[0]), tc.header[1])
			}
			if tc.check != nil {
				tc.check(t, body)
			}
		})
	}
}

// newHandler is the admin API over a key service on keys: the construction every test shares.
func newHandler(keys keyservice.Keys, svcOpts keyservice.Options, opts Options) (*Handler, error) {
	svc, err := keyservice.New(keys, svcOpts)
	if err != nil {
		return nil, err
	}
	return New(svc, opts)
}

func TestNewRejectsEmptyToken(t *testing.T) {
	if _, err := newHandler(keyringtest.NewFake(), keyservice.Options{}, Options{}); err == nil {
		t.Fatal("New accepted an empty token")
	}
}

func TestNewRejectsNilService(t *testing.T) {
	if _, err := New(nil, Options{}); err == nil {
		t.Fatal("New accepted a nil key service")
	}
}

// TestClientGone: a call whose client went away is 499 (like gRPC's CANCELLED), not a 500 that
// would be logged as an internal error.
func TestClientGone(t *testing.T) {
	f := keyringtest.NewFake()
	f.Delay = time.Second
	h, err := newHandler(f, keyservice.Options{Token: token}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequest("GET", "/key?id=alice", nil).WithContext(ctx)
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != StatusClientClosedRequest || !strings.Contains(rec.Body.String(), "request cancelled") {
		t.Fatalf("status %d %s, want 499", rec.Code, rec.Body)
	}
}

// TestEveryClassHasAStatus: the status table covers the key service's closed set of classes.
func TestEveryClassHasAStatus(t *testing.T) {
	for c := keyservice.Internal; c <= keyservice.Exists; c++ {
		if _, ok := statuses[c]; !ok {
			t.Errorf("class %v has no status", c)
		}
	}
}
