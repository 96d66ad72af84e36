package extproc

import (
	"bytes"
	"context"
	"testing"

	"github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/internal/testing/envoytest"
	"github.com/rkms/rkms/store"
)

// TestEnvoyKeyErrors runs the keyring's error classes through the production adapter
// (internal/keysource, see StackKeys) and the real Envoy, to the status a client sees.
func TestEnvoyKeyErrors(t *testing.T) {
	testenv.Integration(t)
	s := startStack(t, "ingress.yaml", Options{})
	ctx := context.Background()

	t.Run("every region refuses the key's copy: 503, not 500", func(t *testing.T) {
		// A record whose only copy the region cannot open (corrupt, or wrapped under another
		// KMS key): the keyring's error is "every region refused", which is not ErrUnavailable.
		// keysource classifies every such error as unavailable; a 500 here means another
		// adapter is wired in.
		err := s.store.Create(ctx, &store.Record{ID: "tenant-refused", Current: 1, Versions: []store.Version{{
			Number: 1, Wrapped: map[string]store.Wrapped{"local-1": {KeyID: "local-1", Blob: []byte("not a blob of this region")}},
		}}})
		if err != nil {
			t.Fatal(err)
		}
		r := s.do(t, "POST", "/patients", patient, envoytest.Bearer(t, "refused")...)
		if r.status != 503 || string(r.body) != `{"error":"key service unavailable"}` {
			t.Fatalf("status %d body %s, want 503 {\"error\":\"key service unavailable\"}", r.status, r.body)
		}
		if n := len(s.app.Received()); n != 0 {
			t.Fatalf("the app got %d requests", n)
		}
	})
	t.Run("store down, key not cached: 503", func(t *testing.T) {
		s.store.SetUnavailable(true)
		defer s.store.SetUnavailable(false)
		r := s.do(t, "POST", "/patients", patient, envoytest.Bearer(t, "uncached")...)
		if r.status != 503 || string(r.body) != `{"error":"key service unavailable"}` {
			t.Fatalf("status %d body %s", r.status, r.body)
		}
	})
	t.Run("key version retired: 403 key_version_retired, newer records still read", func(t *testing.T) {
		if r := s.do(t, "POST", "/patients", patient, envoytest.Bearer(t, "retired")...); r.status != 201 {
			t.Fatalf("create: status %d body %s", r.status, r.body)
		}
		if _, err := s.keyring.Rotate(ctx, "tenant-retired"); err != nil {
			t.Fatal(err)
		}
		if r := s.do(t, "POST", "/patients", patient, envoytest.Bearer(t, "retired")...); r.status != 201 {
			t.Fatalf("create under version 2: status %d body %s", r.status, r.body)
		}
		if _, err := s.keyring.SetMinDecryptVersion(ctx, "tenant-retired", 2); err != nil {
			t.Fatal(err)
		}
		r := s.do(t, "GET", "/patients/1", "", envoytest.Bearer(t, "retired")...)
		want := `{"error":"` + retiredMsg + `","code":"key_version_retired"}`
		if r.status != 403 || string(r.body) != want {
			t.Fatalf("status %d body %s, want 403 %s", r.status, r.body, want)
		}
		if r := s.do(t, "GET", "/patients/2", "", envoytest.Bearer(t, "retired")...); r.status != 200 || !bytes.Contains(r.body, []byte(patientSecrets[0])) {
			t.Fatalf("record under version 2: status %d body %s", r.status, r.body)
		}
	})
	t.Run("key deleted: a stored record no longer opens", func(t *testing.T) {
		if r := s.do(t, "POST", "/patients", patient, envoytest.Bearer(t, "shredded")...); r.status != 201 {
			t.Fatalf("create: status %d body %s", r.status, r.body)
		}
		if err := s.keyring.Delete(ctx, "tenant-shredded"); err != nil {
			t.Fatal(err)
		}
		r := s.do(t, "GET", "/patients/1", "", envoytest.Bearer(t, "shredded")...)
		if r.status != 502 || string(r.body) != `{"error":"`+authFailed+`"}` {
			t.Fatalf("status %d body %s", r.status, r.body)
		}
		for _, p := range patientSecrets {
			if bytes.Contains(r.body, []byte(p)) {
				t.Fatalf("reply leaks %s", p)
			}
		}
	})
}
