package extproc

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rkms/rkms/extproc/policy"
)

// adminOnly sets create: admin_only on the patients policy.
func adminOnly(ps []policy.Config) []policy.Config {
	for i := range ps {
		if ps[i].Name == "patients" {
			ps[i].Create = "admin_only"
		}
	}
	return ps
}

// TestCreateControl: under admin_only an unknown key id is refused with 403 and never created;
// under on_demand an exhausted creation budget gives 429 with retry-after, while tenants whose
// key exists go on.
func TestCreateControl(t *testing.T) {
	for _, tc := range []struct {
		name        string
		edit        func([]policy.Config) []policy.Config
		limit       time.Duration // fakeKeys refuses creations, asking to retry after this
		existing    bool          // tenant-t1's key exists before the request
		want        int
		wantMsg     string
		wantRetry   string
		wantCreated bool
	}{
		{name: "admin_only unknown", edit: adminOnly, want: 403, wantMsg: "key id is unknown"},
		{name: "admin_only unknown with limit", edit: adminOnly, limit: time.Second, want: 403, wantMsg: "key id is unknown"},
		{name: "admin_only existing", edit: adminOnly, existing: true, want: 201},
		{name: "on_demand new", want: 201, wantCreated: true},
		{name: "on_demand new limited", limit: 3 * time.Second, want: 429, wantMsg: "key creation rate limit", wantRetry: "3"},
		{name: "on_demand limited below a second", limit: 10 * time.Millisecond, want: 429, wantRetry: "1"},
		{name: "on_demand existing limited", limit: time.Second, existing: true, want: 201},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnvWith(t, Options{}, tc.edit)
			if tc.existing {
				e.keys.rotate("tenant-t1") // version 1
			}
			e.keys.limitCreation(tc.limit)
			before := len(e.app.Received())
			x := e.do(envoyCfg{}, jsonReq("POST", "/patients", "t1", patient))
			if x.client.status != tc.want {
				t.Fatalf("status %d, want %d (body %s)", x.client.status, tc.want, x.client.body)
			}
			if got, _ := x.client.headers.get("retry-after"); got != tc.wantRetry {
				t.Errorf("retry-after %q, want %q", got, tc.wantRetry)
			}
			if tc.want >= 400 {
				if msg := errorMessage(t, x); !strings.Contains(msg, tc.wantMsg) {
					t.Errorf("error %q, want it to contain %q", msg, tc.wantMsg)
				}
				if strings.Contains(string(x.client.body), "t1") {
					t.Errorf("error reply %s echoes the tenant", x.client.body)
				}
				if len(e.app.Received()) != before {
					t.Error("the app received a refused request")
				}
			}
			if created := e.keys.created("tenant-t1"); created != tc.wantCreated {
				t.Errorf("key created: %v, want %v", created, tc.wantCreated)
			}
			if tc.edit != nil && e.keys.currentCalls() != 0 {
				t.Errorf("admin_only policy called Current %d times", e.keys.currentCalls())
			}
		})
	}
}

// TestAdminOnlyAfterAdminCreate: once an operator created the key, admin_only seals under it
// and reads back.
func TestAdminOnlyAfterAdminCreate(t *testing.T) {
	e := newTestEnvWith(t, Options{}, adminOnly)
	e.mustDo(jsonReq("POST", "/patients", "t1", patient), 403)
	e.keys.rotate("tenant-t1") // the operator's GET /key?id=tenant-t1
	e.mustDo(jsonReq("POST", "/patients", "t1", patient), 201)
	e.noPlaintextReached(patientSecrets...)
	x := e.mustDo(jsonReq("GET", "/patients/1", "t1", ""), 200)
	if !strings.Contains(string(x.client.body), "123-45-6789") {
		t.Fatalf("read back %s", x.client.body)
	}
}

// TestClassifyCreateErrors: the single mapping of the two new key errors to statuses.
func TestClassifyCreateErrors(t *testing.T) {
	for _, tc := range []struct {
		err       error
		ph        phase
		want      int
		wantRetry time.Duration
	}{
		{fmt.Errorf("lookup: %w", ErrKeyUnknown), phaseRequest, http.StatusForbidden, 0},
		{fmt.Errorf("lookup: %w", ErrKeyUnknown), phaseResponse, http.StatusForbidden, 0},
		{&CreateLimitedError{RetryAfter: 2 * time.Second}, phaseRequest, http.StatusTooManyRequests, 2 * time.Second},
		{fmt.Errorf("get: %w", &CreateLimitedError{RetryAfter: 1500 * time.Millisecond}), phaseResponse, http.StatusTooManyRequests, 2 * time.Second},
		{fmt.Errorf("get: %w", ErrKeyCreateLimited), phaseRequest, http.StatusTooManyRequests, time.Second},
	} {
		pe := classify(tc.ph, tc.err)
		if got := httpStatus(pe); got != tc.want || pe.retryAfter() != tc.wantRetry {
			t.Errorf("classify(%v): status %d retry %s, want %d and %s", tc.err, got, pe.retryAfter(), tc.want, tc.wantRetry)
		}
	}
	cle := &CreateLimitedError{RetryAfter: time.Second, Err: errors.New("cause")}
	if !errors.Is(cle, ErrKeyCreateLimited) || !errors.Is(cle, cle.Err) {
		t.Errorf("CreateLimitedError does not wrap ErrKeyCreateLimited and its cause: %v", cle)
	}
}
