package extproc

import (
	"context"
	"testing"

	"github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/internal/testing/envoytest"
	"github.com/rkms/rkms/keyring"
)

// TestEnvoyDeletedNotRecreated: after an operator deletes a tenant's key, the next request
// through Envoy does not silently create a new key under the same id, whatever the policy's
// create mode: it gets 403 like an unknown id under admin_only, no KMS call is made, the
// tombstone stays, and the app sees nothing. Only an explicit re-create serves the tenant again.
func TestEnvoyDeletedNotRecreated(t *testing.T) {
	testenv.Integration(t)
	const refused = `{"error":"key id is unknown: its key must be created by an operator first"}`
	for _, create := range []string{"on_demand", "admin_only"} {
		t.Run(create, func(t *testing.T) {
			ctx := context.Background()
			s := createStack(t, create, keyring.Options{})
			const id = "tenant-acme"
			if _, err := s.keyring.Create(ctx, id, false); err != nil { // the admin API's POST /key
				t.Fatal(err)
			}
			if r := s.do(t, "POST", "/patients", patient, envoytest.Bearer(t, "acme")...); r.status != 201 {
				t.Fatalf("before delete: status %d body %s", r.status, r.body)
			}
			if err := s.keyring.Delete(ctx, id); err != nil { // DELETE /key
				t.Fatal(err)
			}
			calls, before := kmsCallsOf(s.keyring), len(s.app.Received())
			for range 3 {
				if r := s.do(t, "POST", "/patients", patient, envoytest.Bearer(t, "acme")...); r.status != 403 || string(r.body) != refused {
					t.Fatalf("after delete: status %d body %s, want 403 %s", r.status, r.body, refused)
				}
			}
			if n := kmsCallsOf(s.keyring) - calls; n != 0 {
				t.Errorf("%d KMS calls for a deleted id, want 0", n)
			}
			if n := len(s.app.Received()) - before; n != 0 {
				t.Errorf("the app received %d refused requests", n)
			}
			rec, err := s.store.Get(ctx, id)
			if err != nil || !rec.IsTombstone() || len(rec.Versions) != 0 {
				t.Fatalf("record after refused requests: %+v, %v; want the tombstone", rec, err)
			}
			if _, err := s.keyring.Create(ctx, id, true); err != nil { // POST /key?recreate=true
				t.Fatal(err)
			}
			if r := s.do(t, "POST", "/patients", patient, envoytest.Bearer(t, "acme")...); r.status != 201 {
				t.Fatalf("after re-create: status %d body %s", r.status, r.body)
			}
		})
	}
}
