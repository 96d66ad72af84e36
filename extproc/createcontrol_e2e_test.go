package extproc

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rkms/rkms/envoy"
	"github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/internal/testing/envoytest"
	"github.com/rkms/rkms/keyring"
)

// createStack is the ingress stack (tenant from the verified token) with the keyring's creation
// control set by kopts and the patients policy's create mode set to create.
func createStack(t *testing.T, create string, kopts keyring.Options) *stack {
	t.Helper()
	cfg, err := envoy.Config("ingress.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pols := ingressPolicies(t)
	for i := range pols {
		if pols[i].Name == "patients" {
			pols[i].Create = create
		}
	}
	return startStackWith(t, cfg, Options{}, stackConfig{upstream: "app", policies: pols, keyring: kopts})
}

// kmsCallsOf sums the keyring's KMS calls, probes excluded.
func kmsCallsOf(k *keyring.Keyring) uint64 {
	var n uint64
	for _, r := range k.Stats().Regions {
		n += r.GenerateDataKey + r.Encrypt + r.Decrypt
	}
	return n
}

// flood sends one POST /patients per tenant, 16 at a time, and returns the replies in order.
func flood(t *testing.T, s *stack, tenants []string) []reply {
	t.Helper()
	out := make([]reply, len(tenants))
	work := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range work {
				out[i] = s.do(t, "POST", "/patients", patient, envoytest.Bearer(t, tenants[i])...)
			}
		})
	}
	for i := range tenants {
		work <- i
	}
	close(work)
	wg.Wait()
	return out
}

// TestEnvoyCreateRateLimit: 200 requests naming 200 new tenants, under on_demand with
// kms.create_rate 10 and create_burst 20, create at most 20 + 10 per second of flood keys (the
// rest get 429 with retry-after and a JSON error), while a tenant whose key exists keeps being
// served throughout.
func TestEnvoyCreateRateLimit(t *testing.T) {
	testenv.Integration(t)
	const rate, burst, n = 10, 20, 200
	s := createStack(t, "on_demand", keyring.Options{CreateRate: rate, CreateBurst: burst})
	if r := s.do(t, "POST", "/patients", patient, envoytest.Bearer(t, "existing")...); r.status != 201 {
		t.Fatalf("existing tenant: status %d body %s", r.status, r.body)
	}
	recordsBefore := s.store.Len()

	tenants := make([]string, n)
	for i := range tenants {
		tenants[i] = fmt.Sprintf("flood-%03d", i)
	}
	// The existing tenant writes all along the flood.
	stop := make(chan struct{})
	var existingOK, existingBad int
	var mu sync.Mutex
	var bg sync.WaitGroup
	bg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			r := s.do(t, "POST", "/patients", patient, envoytest.Bearer(t, "existing")...)
			mu.Lock()
			if r.status == 201 {
				existingOK++
			} else {
				existingBad++
				t.Errorf("existing tenant during the flood: status %d body %s", r.status, r.body)
			}
			mu.Unlock()
		}
	})
	start := time.Now()
	replies := flood(t, s, tenants)
	elapsed := time.Since(start)
	close(stop)
	bg.Wait()

	created, limited := 0, 0
	for i, r := range replies {
		switch r.status {
		case 201:
			created++
		case 429:
			limited++
			ra, err := strconv.Atoi(r.header.Get("Retry-After"))
			if err != nil || ra < 1 {
				t.Errorf("%s: 429 with retry-after %q", tenants[i], r.header.Get("Retry-After"))
			}
			var body struct{ Error string }
			if err := json.Unmarshal(r.body, &body); err != nil || body.Error != "key creation rate limit reached: retry later" {
				t.Errorf("%s: 429 body %s", tenants[i], r.body)
			}
		default:
			t.Errorf("%s: status %d body %s", tenants[i], r.status, r.body)
		}
	}
	keys := s.store.Len() - recordsBefore
	maxKeys := burst + int(rate*elapsed.Seconds()) + 1
	t.Logf("flood of %d new tenants in %s: %d keys created (at most %d allowed), %d got 201, %d got 429; existing tenant: %d ok, %d not",
		n, elapsed.Round(time.Millisecond), keys, maxKeys, created, limited, existingOK, existingBad)
	if keys > maxKeys || keys != created {
		t.Fatalf("%d keys created (%d replies 201), want at most %d and one per 201", keys, created, maxKeys)
	}
	if limited == 0 {
		t.Fatal("no request was limited")
	}
	if st := s.keyring.Stats(); int(st.CreateLimited) != limited {
		t.Errorf("keyring counted %d limited creations, clients got %d 429s", st.CreateLimited, limited)
	}
	if existingOK == 0 {
		t.Fatal("the existing tenant was not served during the flood")
	}
	if got := len(s.app.Received()); got != 1+created+existingOK {
		t.Errorf("the app received %d requests, want %d", got, 1+created+existingOK)
	}
}

// TestEnvoyAdminOnly: under create: admin_only, unknown tenants get 403 with no KMS call and,
// with the negative cache, at most one store read per unknown id; a tenant whose key an
// operator created is served.
func TestEnvoyAdminOnly(t *testing.T) {
	testenv.Integration(t)
	const ids, rounds = 50, 4
	s := createStack(t, "admin_only", keyring.Options{NegativeTTL: time.Minute})
	if _, err := s.keyring.Get(context.Background(), "tenant-provisioned"); err != nil { // the admin API's path
		t.Fatal(err)
	}
	if r := s.do(t, "POST", "/patients", patient, envoytest.Bearer(t, "provisioned")...); r.status != 201 {
		t.Fatalf("provisioned tenant: status %d body %s", r.status, r.body)
	}
	calls, reads, records := kmsCallsOf(s.keyring), s.store.Calls().Get, s.store.Len()
	before := len(s.app.Received())

	var tenants []string
	for range rounds {
		for i := range ids {
			tenants = append(tenants, fmt.Sprintf("unknown-%02d", i))
		}
	}
	for i, r := range flood(t, s, tenants) {
		if r.status != 403 || string(r.body) != `{"error":"key id is unknown: its key must be created by an operator first"}` {
			t.Errorf("%s: status %d body %s", tenants[i], r.status, r.body)
		}
	}
	st := s.keyring.Stats()
	gotCalls, gotReads := kmsCallsOf(s.keyring)-calls, s.store.Calls().Get-reads
	t.Logf("%d requests for %d unknown tenants: %d KMS calls, %d store reads, %d negative-cache hits",
		len(tenants), ids, gotCalls, gotReads, st.NegativeHits)
	if gotCalls != 0 {
		t.Errorf("%d KMS calls for unknown tenants, want 0", gotCalls)
	}
	if gotReads > ids {
		t.Errorf("%d store reads for %d unknown ids, want at most one each", gotReads, ids)
	}
	if s.store.Len() != records {
		t.Errorf("%d records created", s.store.Len()-records)
	}
	if n := len(s.app.Received()); n != before {
		t.Errorf("the app received %d refused requests", n-before)
	}
	if r := s.do(t, "POST", "/patients", patient, envoytest.Bearer(t, "provisioned")...); r.status != 201 {
		t.Fatalf("provisioned tenant after the flood: status %d body %s", r.status, r.body)
	}
}
