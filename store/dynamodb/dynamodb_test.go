package dynamodb_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/store"
	"github.com/rkms/rkms/store/dynamodb"
	"github.com/rkms/rkms/store/storetest"
)

const (
	region = "us-east-1"
	table  = "rkms-keys"
)

// newStore returns a store on endpoints (the first one must be up to create the table).
func newStore(t *testing.T, cfg dynamodb.Config) *dynamodb.Store {
	t.Helper()
	if cfg.Table == "" {
		cfg.Table = table
	}
	if cfg.Region == "" {
		cfg.Region = region
	}
	s, err := dynamodb.New(t.Context(), cfg, testenv.AWSConfig(t, region))
	if err != nil {
		t.Fatalf("dynamodb.New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	testenv.Integration(t)
	d := testenv.StartDynalite(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		return newStore(t, dynamodb.Config{Endpoints: []string{d.Endpoint}, CreateTable: true})
	})
}

// deadEndpoint returns a loopback URL where nothing listens.
func deadEndpoint(t *testing.T) string {
	return fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(t))
}

func sample(id string) *store.Record {
	return &store.Record{ID: id, Current: 1, Versions: []store.Version{{
		Number: 1, Created: time.Unix(1700000000, 0).UTC(),
		Wrapped: map[string]store.Wrapped{"us-east-1": {KeyID: "kid", Blob: []byte{0, 1, 2, 0xff}}},
	}}}
}

// requireUnavailableWithin runs call and checks that it fails with ErrUnavailable within limit.
func requireUnavailableWithin(t *testing.T, name string, limit time.Duration, call func() error) {
	t.Helper()
	start := time.Now()
	err := call()
	elapsed := time.Since(start)
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("%s = %v, want ErrUnavailable", name, err)
	}
	if elapsed > limit {
		t.Fatalf("%s took %v, more than %v", name, elapsed, limit)
	}
	t.Logf("%s failed in %v: %v", name, elapsed.Round(time.Millisecond), err)
}

func TestOutage(t *testing.T) {
	testenv.Integration(t)
	ctx := t.Context()
	d := testenv.StartDynalite(t)
	s := newStore(t, dynamodb.Config{Endpoints: []string{d.Endpoint}, CreateTable: true})
	rec := sample("outage")
	if err := s.Create(ctx, rec); err != nil {
		t.Fatal(err)
	}

	d.Stop()
	const limit = 2 * time.Second
	ops := []struct {
		name string
		call func() error
	}{
		{"Get", func() error { _, err := s.Get(ctx, "outage"); return err }},
		{"Create", func() error { return s.Create(ctx, sample("new")) }},
		{"Update", func() error { return s.Update(ctx, rec.Clone()) }},
		{"Delete", func() error { return s.Delete(ctx, "outage") }},
		{"Ping", func() error { return s.Ping(ctx) }},
	}
	for range 3 { // repeated failures must stay fast (no retry quota to drain)
		for _, op := range ops {
			requireUnavailableWithin(t, op.name, limit, op.call)
		}
	}

	d.Start()
	got, err := s.Get(ctx, "outage")
	if err != nil {
		t.Fatalf("Get after restart: %v", err)
	}
	if got.Revision != rec.Revision || got.Current != 1 || string(got.Versions[0].Wrapped["us-east-1"].Blob) != "\x00\x01\x02\xff" {
		t.Fatalf("data changed across the outage: %+v", got)
	}
	if _, err := s.Get(ctx, "new"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get of record created during the outage = %v, want ErrNotFound", err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping after restart: %v", err)
	}
}

func TestStalledEndpointIsBounded(t *testing.T) {
	testenv.Integration(t)
	ctx := t.Context()
	d := testenv.StartDynalite(t)
	timeout := 300 * time.Millisecond
	s := newStore(t, dynamodb.Config{Endpoints: []string{d.Endpoint}, CreateTable: true, Timeout: timeout})
	if err := s.Create(ctx, sample("stall")); err != nil {
		t.Fatal(err)
	}
	d.Stall()
	defer d.Start()
	limit := timeout + time.Second
	requireUnavailableWithin(t, "Get", limit, func() error { _, err := s.Get(ctx, "stall"); return err })
	requireUnavailableWithin(t, "Create", limit, func() error { return s.Create(ctx, sample("other")) })
	requireUnavailableWithin(t, "Ping", limit, func() error { return s.Ping(ctx) })
	err := s.Ping(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ping on a stalled endpoint = %v, want it to wrap context.DeadlineExceeded", err)
	}
}

// TestEndpointFallback uses two dynalites as the replicas of a global table; replication is
// simulated by writing to each directly.
func TestEndpointFallback(t *testing.T) {
	testenv.Integration(t)
	ctx := t.Context()
	primary, replica := testenv.StartDynalite(t), testenv.StartDynalite(t)
	onPrimary := newStore(t, dynamodb.Config{Endpoints: []string{primary.Endpoint}, CreateTable: true})
	onReplica := newStore(t, dynamodb.Config{Endpoints: []string{replica.Endpoint}, CreateTable: true})
	both := newStore(t, dynamodb.Config{Endpoints: []string{primary.Endpoint, region + "=" + replica.Endpoint}})

	rec := sample("k")
	if err := onPrimary.Create(ctx, rec); err != nil {
		t.Fatal(err)
	}
	replicated := sample("k")
	replicated.Current = 2 // tells the replica's copy apart
	if err := onReplica.Create(ctx, replicated); err != nil {
		t.Fatal(err)
	}
	if err := onReplica.Create(ctx, sample("replica-only")); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name        string
		id          string
		primaryDown bool
		wantCurrent uint32
		wantErr     error
	}{
		{"primary-answers", "k", false, 1, nil},
		{"not-found-on-primary-is-final", "replica-only", false, 0, store.ErrNotFound},
		{"falls-back-when-primary-down", "k", true, 2, nil},
		{"replica-not-found", "absent", true, 0, store.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.primaryDown {
				primary.Stop()
			} else {
				primary.Start()
			}
			got, err := both.Get(ctx, tc.id)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Get = %v, want %v", err, tc.wantErr)
			}
			if err == nil && got.Current != tc.wantCurrent {
				t.Fatalf("Get answered from the wrong endpoint: Current %d, want %d", got.Current, tc.wantCurrent)
			}
		})
	}

	primary.Stop()
	if err := both.Ping(ctx); err != nil {
		t.Fatalf("Ping with one endpoint up: %v", err)
	}
	// Writes go to the first endpoint only, never to a replica.
	requireUnavailableWithin(t, "Create", 2*time.Second, func() error { return both.Create(ctx, sample("w")) })
	if _, err := onReplica.Get(ctx, "w"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a write reached the replica: %v", err)
	}
	replica.Stop()
	requireUnavailableWithin(t, "Get with all endpoints down", 2*time.Second, func() error { _, err := both.Get(ctx, "k"); return err })
	requireUnavailableWithin(t, "Ping with all endpoints down", 2*time.Second, func() error { return both.Ping(ctx) })
}

func TestFallbackToDeadFirstEndpoint(t *testing.T) {
	testenv.Integration(t)
	ctx := t.Context()
	d := testenv.StartDynalite(t)
	direct := newStore(t, dynamodb.Config{Endpoints: []string{d.Endpoint}, CreateTable: true})
	rec := sample("k")
	if err := direct.Create(ctx, rec); err != nil {
		t.Fatal(err)
	}
	s := newStore(t, dynamodb.Config{Endpoints: []string{deadEndpoint(t), d.Endpoint}})
	got, err := s.Get(ctx, "k")
	if err != nil {
		t.Fatalf("Get with a dead first endpoint: %v", err)
	}
	if got.Revision != rec.Revision || got.Current != rec.Current {
		t.Fatalf("Get = %+v", got)
	}
}

func TestCreateTable(t *testing.T) {
	testenv.Integration(t)
	ctx := t.Context()
	d := testenv.StartDynalite(t)

	// Without CreateTable a missing table is an outage, reported by Ping and every call.
	s := newStore(t, dynamodb.Config{Table: "other", Endpoints: []string{d.Endpoint}})
	if err := s.Ping(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Ping on a missing table = %v, want ErrUnavailable", err)
	}
	if _, err := s.Get(ctx, "k"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Get on a missing table = %v, want ErrUnavailable", err)
	}

	// Creating twice (a second replica starting) is fine, and the table works.
	for i := range 2 {
		s := newStore(t, dynamodb.Config{Table: "other", Endpoints: []string{d.Endpoint}, CreateTable: true})
		if err := s.Ping(ctx); err != nil {
			t.Fatalf("Ping after create %d: %v", i, err)
		}
	}
	if err := s.Create(ctx, sample("k")); err != nil {
		t.Fatalf("Create on the created table: %v", err)
	}
}

func TestCreateTableUnreachable(t *testing.T) {
	testenv.Integration(t)
	start := time.Now()
	_, err := dynamodb.New(t.Context(), dynamodb.Config{Table: table, Region: region,
		Endpoints: []string{deadEndpoint(t)}, CreateTable: true}, testenv.AWSConfig(t, region))
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("New with an unreachable endpoint = %v, want ErrUnavailable", err)
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Fatalf("New took %v", elapsed)
	}
}
