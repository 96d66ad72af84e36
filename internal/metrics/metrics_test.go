package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/rkms/rkms/extproc"
	"github.com/rkms/rkms/keyring"
	"github.com/rkms/rkms/store"
)

// value returns the value of the series name{labels} (a histogram's sample count), and whether
// it exists. Labels not given are not checked.
func value(t *testing.T, m *Metrics, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			if !hasLabels(s, labels) {
				continue
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				return s.GetCounter().GetValue(), true
			case dto.MetricType_GAUGE:
				return s.GetGauge().GetValue(), true
			case dto.MetricType_HISTOGRAM:
				return float64(s.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

func hasLabels(s *dto.Metric, want map[string]string) bool {
	n := 0
	for _, l := range s.GetLabel() {
		if v, ok := want[l.GetName()]; ok {
			if v != l.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

func expect(t *testing.T, m *Metrics, name string, labels map[string]string, want float64) {
	t.Helper()
	got, ok := value(t, m, name, labels)
	if !ok {
		t.Errorf("%s%v: no such series", name, labels)
		return
	}
	if got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

// fakeRegion answers each call with the next error of errs (nil: success).
type fakeRegion struct {
	errs []error
}

func (f *fakeRegion) next() error {
	if len(f.errs) == 0 {
		return nil
	}
	err := f.errs[0]
	f.errs = f.errs[1:]
	return err
}

func (f *fakeRegion) Name() string  { return "eu-west-1" }
func (f *fakeRegion) KeyID() string { return "arn:aws:kms:eu-west-1:1:key/k" }
func (f *fakeRegion) GenerateDataKey(context.Context, map[string]string) ([]byte, []byte, error) {
	if err := f.next(); err != nil {
		return nil, nil, err
	}
	return make([]byte, 32), []byte("wrapped"), nil
}
func (f *fakeRegion) Encrypt(_ context.Context, pt []byte, _ map[string]string) ([]byte, error) {
	if err := f.next(); err != nil {
		return nil, err
	}
	return []byte("wrapped"), nil
}
func (f *fakeRegion) Decrypt(context.Context, []byte, map[string]string) ([]byte, error) {
	if err := f.next(); err != nil {
		return nil, err
	}
	return make([]byte, 32), nil
}

func TestWrapRegion(t *testing.T) {
	m := New()
	f := &fakeRegion{errs: []error{
		nil, // generate ok
		fmt.Errorf("decrypt: %w: access denied", keyring.ErrRegionRejected),
		fmt.Errorf("decrypt: %w: timeout", keyring.ErrRegionUnavailable),
		context.Canceled,
		errors.New("neither class: counted as unavailable"),
		nil, // decrypt ok
	}}
	r := m.WrapRegion(f)
	if r.Name() != f.Name() || r.KeyID() != f.KeyID() {
		t.Fatal("wrapper changed the region's identity")
	}
	ctx := context.Background()
	if _, _, err := r.GenerateDataKey(ctx, nil); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if _, err := r.Decrypt(ctx, []byte("x"), nil); err == nil {
			t.Fatal("error swallowed")
		}
	}
	if _, err := r.Decrypt(ctx, []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Encrypt(ctx, make([]byte, 32), nil); err != nil {
		t.Fatal(err)
	}
	const lat = "rkms_kms_request_duration_seconds"
	expect(t, m, lat, map[string]string{"region": "eu-west-1", "op": "generate_data_key"}, 1)
	expect(t, m, lat, map[string]string{"region": "eu-west-1", "op": "decrypt"}, 5)
	expect(t, m, lat, map[string]string{"region": "eu-west-1", "op": "encrypt"}, 1)
	const errs = "rkms_kms_errors_total"
	expect(t, m, errs, map[string]string{"region": "eu-west-1", "op": "decrypt", "class": "rejected"}, 1)
	expect(t, m, errs, map[string]string{"region": "eu-west-1", "op": "decrypt", "class": "unavailable"}, 2)
	expect(t, m, errs, map[string]string{"region": "eu-west-1", "op": "decrypt", "class": "canceled"}, 1)
	// Series of errors that did not happen exist at 0 from the start.
	expect(t, m, errs, map[string]string{"region": "eu-west-1", "op": "generate_data_key", "class": "unavailable"}, 0)
	expect(t, m, errs, map[string]string{"region": "eu-west-1", "op": "encrypt", "class": "rejected"}, 0)
}

func TestWrapStore(t *testing.T) {
	m := New()
	s := m.WrapStore(store.NewMemory())
	ctx := context.Background()
	rec := &store.Record{ID: "a", Current: 1, Versions: []store.Version{{Number: 1, Created: time.Unix(1, 0).UTC(),
		Wrapped: map[string]store.Wrapped{"r": {KeyID: "k", Blob: []byte("b")}}}}}
	steps := []struct {
		name string
		call func() error
		want error
	}{
		{"get absent", func() error { _, err := s.Get(ctx, "a"); return err }, store.ErrNotFound},
		{"create", func() error { return s.Create(ctx, rec.Clone()) }, nil},
		{"create again", func() error { return s.Create(ctx, rec.Clone()) }, store.ErrExists},
		{"stale update", func() error { r := rec.Clone(); r.Revision = -7; return s.Update(ctx, r) }, store.ErrConflict},
		{"get", func() error { _, err := s.Get(ctx, "a"); return err }, nil},
		{"invalid id", func() error { _, err := s.Get(ctx, ""); return err }, store.ErrInvalid},
		{"delete", func() error { return s.Delete(ctx, "a") }, nil},
		{"ping", func() error { return s.Ping(ctx) }, nil},
	}
	for _, st := range steps {
		if err := st.call(); !errors.Is(err, st.want) || (st.want == nil) != (err == nil) {
			t.Fatalf("%s: %v, want %v", st.name, err, st.want)
		}
	}
	const lat, errs = "rkms_store_request_duration_seconds", "rkms_store_errors_total"
	for op, n := range map[string]float64{"get": 3, "create": 2, "update": 1, "delete": 1, "ping": 1} {
		expect(t, m, lat, map[string]string{"op": op}, n)
	}
	expect(t, m, errs, map[string]string{"op": "get", "class": "not_found"}, 1)
	expect(t, m, errs, map[string]string{"op": "get", "class": "invalid"}, 1)
	expect(t, m, errs, map[string]string{"op": "create", "class": "exists"}, 1)
	expect(t, m, errs, map[string]string{"op": "update", "class": "conflict"}, 1)
	expect(t, m, errs, map[string]string{"op": "ping", "class": "unavailable"}, 0)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestClasses(t *testing.T) {
	for _, tc := range []struct {
		err  error
		kms  string
		stor string
	}{
		{fmt.Errorf("x: %w", store.ErrUnavailable), "unavailable", "unavailable"},
		{context.DeadlineExceeded, "unavailable", "unavailable"},
		{fmt.Errorf("x: %w", store.ErrCorrupt), "unavailable", "corrupt"},
		{fmt.Errorf("x: %w", context.Canceled), "canceled", "canceled"},
		{errors.New("boom"), "unavailable", "other"},
		{fmt.Errorf("x: %w", keyring.ErrRegionRejected), "rejected", "other"},
	} {
		if got := kmsClass(tc.err); got != tc.kms {
			t.Errorf("kmsClass(%v) = %s, want %s", tc.err, got, tc.kms)
		}
		if got := storeClass(tc.err); got != tc.stor {
			t.Errorf("storeClass(%v) = %s, want %s", tc.err, got, tc.stor)
		}
	}
}

type fakeStats struct{}

func (fakeStats) RegionStatus() []keyring.RegionStatus {
	return []keyring.RegionStatus{
		{Name: "us-east-1", Healthy: true, Breaker: "closed"},
		{Name: "us-west-2", Healthy: false, Breaker: "open", ConsecutiveFailures: 3},
	}
}

func (fakeStats) Stats() keyring.Stats {
	return keyring.Stats{CacheHits: 10, CacheMisses: 3, CacheEntries: 2, Created: 1, RepairedCopies: 4, PendingRepairs: 5, StaleServed: 6, DerivedDropped: 7,
		CreateLimited: 8, NegativeHits: 9, NegativeEntries: 11,
		RotationsAge: 12, RotationsSeals: 13, RotationsAdmin: 14, VersionsRetired: 15, VersionsDestroyed: 16, RetiredRefused: 17, SealReservations: 18,
		StoreReads: 19, LocalWraps: 20, LocalUnwraps: 21, WrappedHits: 22, WrappedMisses: 23, WrappedEntries: 24, Rewrapped: 25,
		RewrapScanned: 26, RewrapPasses: 27, RewrapPassesDone: 28, RewrapRunning: true, BranchRetires: 29,
		Regions: []keyring.RegionStats{{Name: "us-east-1"}, {Name: "us-west-2", BreakerOpens: 2}}}
}

func TestWatchKeyring(t *testing.T) {
	m := New()
	if err := m.WatchKeyring(fakeStats{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"rkms_kms_breaker_state", map[string]string{"region": "us-east-1", "state": "closed"}, 1},
		{"rkms_kms_breaker_state", map[string]string{"region": "us-east-1", "state": "open"}, 0},
		{"rkms_kms_breaker_state", map[string]string{"region": "us-west-2", "state": "open"}, 1},
		{"rkms_kms_breaker_state", map[string]string{"region": "us-west-2", "state": "half-open"}, 0},
		{"rkms_kms_region_healthy", map[string]string{"region": "us-east-1"}, 1},
		{"rkms_kms_region_healthy", map[string]string{"region": "us-west-2"}, 0},
		{"rkms_kms_breaker_opens_total", map[string]string{"region": "us-west-2"}, 2},
		{"rkms_keyring_cache_hits_total", nil, 10},
		{"rkms_keyring_cache_misses_total", nil, 3},
		{"rkms_keyring_cache_keys", nil, 2},
		{"rkms_keyring_keys_created_total", nil, 1},
		{"rkms_keyring_repairs_pending", nil, 5},
		{"rkms_keyring_repaired_copies_total", nil, 4},
		{"rkms_keyring_stale_served_total", nil, 6},
		{"rkms_keyring_derived_dropped_total", nil, 7},
		{"rkms_keyring_creations_total", map[string]string{"result": "created"}, 1},
		{"rkms_keyring_creations_total", map[string]string{"result": "limited"}, 8},
		{"rkms_keyring_negative_hits_total", nil, 9},
		{"rkms_keyring_negative_keys", nil, 11},
		{"rkms_keyring_rotations_total", map[string]string{"reason": "age"}, 12},
		{"rkms_keyring_rotations_total", map[string]string{"reason": "seals"}, 13},
		{"rkms_keyring_rotations_total", map[string]string{"reason": "admin"}, 14},
		{"rkms_keyring_versions_retired_total", nil, 15},
		{"rkms_keyring_versions_destroyed_total", nil, 16},
		{"rkms_decrypt_refused_total", map[string]string{"reason": "version_retired"}, 17},
		{"rkms_keyring_store_reads_total", nil, 19},
		{"rkms_keyring_local_wraps_total", nil, 20},
		{"rkms_keyring_local_unwraps_total", nil, 21},
		{"rkms_keyring_wrapped_cache_hits_total", nil, 22},
		{"rkms_keyring_wrapped_cache_misses_total", nil, 23},
		{"rkms_keyring_wrapped_cache_records", nil, 24},
		{"rkms_keyring_rewrapped_total", nil, 25},
		{"rkms_keyring_rewrap_scanned_total", nil, 26},
		{"rkms_keyring_rewrap_passes_total", nil, 27},
		{"rkms_keyring_rewrap_passes_done_total", nil, 28},
		{"rkms_keyring_rewrap_running", nil, 1},
		{"rkms_keyring_branch_retires_total", nil, 29},
		{"rkms_keyring_seal_reservations_total", nil, 18},
	} {
		expect(t, m, tc.name, tc.labels, tc.want)
	}
	if err := m.WatchKeyring(fakeStats{}); err == nil {
		t.Error("a second keyring collector was accepted (duplicate series)")
	}
}

func TestObserver(t *testing.T) {
	m := New()
	m.ObserveRequest("patients", "request_body", "continue", 0, 3*time.Millisecond)
	m.ObserveRequest("patients", "request_body", "refused", 400, time.Millisecond)
	m.ObserveRequest("", "request_headers", "continue", 0, time.Microsecond)
	m.ObserveRequest("", "request_headers", "refused", 418, time.Microsecond)
	m.ObserveRequest("", "request_headers", "refused", 9999, time.Microsecond)
	m.ObserveFields("patients", "encrypt", 4)
	m.ObserveFields("patients", "encrypt", 2)
	const reqs = "rkms_extproc_requests_total"
	expect(t, m, reqs, map[string]string{"policy": "patients", "phase": "request_body", "outcome": "continue", "status": "0"}, 1)
	expect(t, m, reqs, map[string]string{"policy": "patients", "phase": "request_body", "outcome": "refused", "status": "400"}, 1)
	expect(t, m, reqs, map[string]string{"policy": "none", "phase": "request_headers", "outcome": "continue"}, 1)
	expect(t, m, reqs, map[string]string{"policy": "none", "outcome": "refused", "status": "418"}, 1)
	expect(t, m, reqs, map[string]string{"policy": "none", "outcome": "refused", "status": "other"}, 1)
	expect(t, m, "rkms_extproc_processing_seconds", map[string]string{"phase": "request_body"}, 2)
	expect(t, m, "rkms_extproc_processing_seconds", map[string]string{"phase": "request_headers"}, 3)
	expect(t, m, "rkms_extproc_fields_total", map[string]string{"policy": "patients", "op": "encrypt"}, 6)
	m.ObserveReveal("people", "support", "mask:last4", 3)
	m.ObserveReveal("people", "support", "mask:last4", 2)
	m.ObserveReveal("people", "default", "redact", 1)
	expect(t, m, "rkms_extproc_reveals_total", map[string]string{"policy": "people", "rule": "support", "action": "mask:last4"}, 5)
	expect(t, m, "rkms_extproc_reveals_total", map[string]string{"policy": "people", "rule": "default", "action": "redact"}, 1)
}

func TestHandler(t *testing.T) {
	m := New()
	m.ObserveFields("p", "decrypt", 1)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
		t.Fatalf("%d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	for _, want := range []string{`rkms_extproc_fields_total{op="decrypt",policy="p"} 1`, "go_goroutines ", "process_"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
}

type fakeExtProc extproc.Stats

func (f fakeExtProc) Stats() extproc.Stats { return extproc.Stats(f) }

// TestExtProcLimits: refusals by reason (every reason present from the start) and the gauges of
// streams in flight and the memory budget.
func TestExtProcLimits(t *testing.T) {
	m := New()
	if err := m.WatchExtProc(fakeExtProc{Streams: 3, BudgetBytes: 256 << 20, ReservedBytes: 5 << 20}); err != nil {
		t.Fatal(err)
	}
	m.ObserveRefused(extproc.RefusedMemory)
	m.ObserveRefused(extproc.RefusedMemory)
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"rkms_extproc_refused_total", map[string]string{"reason": "memory"}, 2},
		{"rkms_extproc_refused_total", map[string]string{"reason": "idle_timeout"}, 0},
		{"rkms_extproc_streams_in_flight", nil, 3},
		{"rkms_extproc_memory_budget_bytes", nil, 256 << 20},
		{"rkms_extproc_memory_reserved_bytes", nil, 5 << 20},
	} {
		if got, ok := value(t, m, tc.name, tc.labels); !ok || got != tc.want {
			t.Errorf("%s%v = %v (present %v), want %v", tc.name, tc.labels, got, ok, tc.want)
		}
	}
}

// TestAdminAuth: failed logins by result (no principal: the caller is unknown), refused
// operations by credential name and operation.
func TestAdminAuth(t *testing.T) {
	m := New()
	m.AdminAuthFailure(false)
	m.AdminAuthFailure(true)
	m.AdminForbidden("billing-svc", "rotate")
	m.AdminForbidden("billing-svc", "rotate")
	m.AdminForbidden("gitops", "read")
	expect(t, m, "rkms_admin_auth_failures_total", map[string]string{"result": "refused"}, 1)
	expect(t, m, "rkms_admin_auth_failures_total", map[string]string{"result": "throttled"}, 1)
	expect(t, m, "rkms_admin_forbidden_total", map[string]string{"principal": "billing-svc", "op": "rotate"}, 2)
	expect(t, m, "rkms_admin_forbidden_total", map[string]string{"principal": "gitops", "op": "read"}, 1)
	m.RewrapItems("rewrapped", 998)
	m.RewrapItems("rewrapped", 2)
	m.RewrapItems("authentication_failed", 1)
	expect(t, m, "rkms_rewrap_items_total", map[string]string{"result": "rewrapped"}, 1000)
	expect(t, m, "rkms_rewrap_items_total", map[string]string{"result": "authentication_failed"}, 1)
}
