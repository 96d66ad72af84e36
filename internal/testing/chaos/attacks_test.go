package chaos

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/rkms/rkms/extproc"
	"github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/internal/testing/envoytest"
	"github.com/rkms/rkms/store"
	"github.com/rkms/rkms/store/dynamodb"
)

// The attacks of issue 13, each against a fresh stack. The generators run in a child process
// (attacker_test.go); these functions set each one up, run it beside the good client and check
// what the issue promises.

// 1. Slow bodies through Envoy: each POST sends its headers and a little of its body, then one
// byte a second. Before issue 13 each held an rkms stream for as long as it lasted. Envoy alone
// first, as the baseline.
func attackSlowBodies(t *testing.T) {
	s := startAbuseStack(t, replicaOptions{})
	throughEnvoy(t, s, "slow bodies through Envoy",
		fmt.Sprintf("%d POSTs, 1 KiB bodies at 1 byte/s, opened over 1 s, for %v", slowBodies, hold()),
		attackSpec{Kind: kindSlow, N: slowBodies}, 0,
		func(o *outcome, res attackResult) {
			o.notes = fmt.Sprintf("%d bodies still unanswered at the end", res.Held)
		})
}

// throughEnvoy runs an attack on the tagged route /patients twice: first against the same route
// of Envoy without rkms (the baseline, reported, not asserted), then against rkms with a second
// good client on the route without rkms at the same moment (the reference). spec gets the target,
// path and the attacker's token; after records each run's notes and its checks. gap is the
// attack's open finding, allowed on top of the p99 limit (outcome.knownGap).
func throughEnvoy(t *testing.T, s *abuseStack, attack, rate string, spec attackSpec, gap time.Duration, after func(o *outcome, res attackResult)) {
	t.Helper()
	spec.Target, spec.Token = s.url, envoytest.Token(t, "mallory")
	var envoyAlone time.Duration // the baseline run's good client p99
	for _, baseline := range []bool{true, false} {
		o := &outcome{attack: attack, baseline: baseline, baselineP99: envoyAlone, rate: rate, knownGap: gap}
		spec.Path = "/patients"
		good := patientsClient(s.url, "good")
		if baseline {
			o.attack += " (baseline: Envoy alone)"
			spec.Path, good = baselinePath+"/patients", plainClient(s.url, "good")
		} else {
			o.reference = plainClient(s.url, "reference")
		}
		res := underAttack(t, s, good, o, spec)
		if baseline {
			_, _, envoyAlone = good.summary()
		}
		after(o, res)
	}
}

// 2. Idle streams straight to the ext_proc port: gRPC streams that never send a message, from
// another address, over several connections, each opened again a second after rkms ends it.
// Before issue 13 they held every stream slot.
func attackIdleStreams(t *testing.T) {
	s := startAbuseStack(t, replicaOptions{})
	o := &outcome{attack: "idle streams to ext_proc",
		rate: fmt.Sprintf("%d gRPC streams that never send, opened over 1 s (each reopened 1 s after rkms ends it), on 4 connections from %s, for %v",
			idleStreams, attackerAddr, hold())}
	res := underAttack(t, s, patientsClient(s.url, "good"), o, attackSpec{Kind: kindIdle,
		Target: "127.0.0.1:" + strconv.Itoa(s.rep.extproc), N: idleStreams})
	o.notes = fmt.Sprintf("%d streams started, at most %d at once", res.OK, res.MaxInFlight)
	// The attack must fill every slot (rkms refuses the rest at once, so the attacker's own
	// streams in flight stay near max_concurrent_streams) and try all of its streams.
	if res.MaxInFlight < extproc.DefaultMaxConcurrentStreams || res.OK < idleStreams {
		t.Errorf("the attacker had at most %d streams at once (want every one of rkms's %d slots) and started %d (want %d)",
			res.MaxInFlight, extproc.DefaultMaxConcurrentStreams, res.OK, idleStreams)
	}
}

// 3a. Memory flood straight to ext_proc: waves of streams that each announce a 1 MiB body and
// send it, all of a wave at once. Before issue 13 rkms took every one of them into memory.
func attackMemoryDirect(t *testing.T) {
	s := startAbuseStack(t, replicaOptions{})
	o := &outcome{attack: "memory flood to ext_proc",
		rate: fmt.Sprintf("waves of %d streams of 1 MiB bodies at once, one every %v, from %s on 4 connections, for %v",
			directBodies, *directPeriod, attacker2Addr, hold())}
	res := underAttack(t, s, patientsClient(s.url, "good"), o, attackSpec{Kind: kindMemDirect,
		Target: "127.0.0.1:" + strconv.Itoa(s.rep.extproc), N: directBodies, Period: *directPeriod})
	o.notes = fmt.Sprintf("%d waves, %d bodies processed", res.Waves, res.OK)
	checkFlood(t, o, directBodies)
}

// 3b. Memory flood through Envoy: waves of 700 KB POSTs on a tagged route, all of a wave at
// once. Before issue 13 rkms's memory rose above the Helm chart's 256 Mi limit. Envoy alone
// first, as the baseline.
// memFloodEnvoyGap is the open finding of the memory flood through Envoy (RELIABILITY.md,
// "Abuse runs"): under it rkms adds about 100 ms to a small request's p99 over Envoy alone at the
// same moment, and the separate Envoy-alone baseline varies by tens of ms between runs (133-212
// ms seen). The test allows it on top of its limit, so that it guards against a regression beyond
// today's level instead of failing on the baseline's variance; issue 18 is to remove the gap.
const memFloodEnvoyGap = 100 * time.Millisecond

func attackMemoryEnvoy(t *testing.T) {
	s := startAbuseStack(t, replicaOptions{})
	throughEnvoy(t, s, "memory flood through Envoy",
		fmt.Sprintf("waves of %d POSTs of 700 KB at once, each body sent over %v, one wave every %v, from %s, for %v",
			envoyBodies, *envoySpread, *envoyPeriod, attackerAddr, hold()),
		attackSpec{Kind: kindMemEnvoy, N: envoyBodies, Period: *envoyPeriod, Spread: *envoySpread}, memFloodEnvoyGap,
		func(o *outcome, res attackResult) {
			o.notes = fmt.Sprintf("%d waves, %d bodies processed", res.Waves, res.OK)
			if !o.baseline {
				checkFlood(t, o, envoyBodies)
			}
		})
}

// checkFlood: the flood reached its concurrency, rkms refused some of it (the budget was hit),
// and rkms stayed within its budget plus the documented overhead.
func checkFlood(t *testing.T, o *outcome, concurrency int) {
	t.Helper()
	if o.res.MaxInFlight < int64(concurrency) {
		t.Errorf("the attacker had at most %d bodies in flight, not %d", o.res.MaxInFlight, concurrency)
	}
	if o.res.Refused["503"] == 0 {
		t.Errorf("nothing was refused with 503 (%s): the flood did not reach the memory budget", o.refused)
	}
	if o.rss > memoryBudget+rssOverhead {
		t.Errorf("rkms peak RSS %d MiB > budget %d MiB + overhead %d MiB", o.rss>>20, memoryBudget>>20, rssOverhead>>20)
	}
}

// 4. Tenant flood: requests through Envoy for brand-new tenants at a fixed rate, each of which
// makes rkms create a key in every region. With kms.create_rate and create_burst, rkms creates
// at most burst + rate x duration keys.
func attackTenants(t *testing.T) {
	s := startAbuseStack(t, replicaOptions{})
	n := volume(newTenantsShort, newTenantsLong)
	o := &outcome{attack: "tenant flood"}
	prefix := "flood-" + token("")[:6] + "-"
	res := underAttack(t, s, patientsClient(s.url, "good"), o, attackSpec{Kind: kindTenants,
		Target: s.url, Path: "/patients", N: n, Rate: newTenantRate, Prefix: prefix})
	tried := make([]string, res.Sent)
	for i := range tried {
		tried[i] = prefix + strconv.Itoa(i+1)
	}
	created := countRecords(t, s.b, tried)
	took := res.Took
	limit := createBurst + int(float64(createRate)*took.Seconds()+0.999)
	o.rate = fmt.Sprintf("%d new tenants at %d/s (in %v)", len(tried), newTenantRate, took.Round(10*time.Millisecond))
	o.notes = fmt.Sprintf("%d keys created (limit burst %d + rate %d/s x %v = %d)", created, createBurst, createRate, took.Round(100*time.Millisecond), limit)
	t.Log(o.notes)
	if created > limit {
		t.Errorf("%d keys created for %d new tenants in %v: more than burst + rate x duration = %d", created, len(tried), took, limit)
	}
}

// countRecords counts the key records in the store among tenants' key ids.
func countRecords(t *testing.T, b *backend, tenants []string) int {
	t.Helper()
	st, err := dynamodb.New(context.Background(), dynamodb.Config{Table: "rkms_keys", Region: "us-east-1",
		Endpoints: []string{b.db.Endpoint}}, testenv.AWSConfig(t, "us-east-1"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n := 0
	for _, tn := range tenants {
		_, err := st.Get(context.Background(), "tenant-"+tn)
		switch {
		case err == nil:
			n++
		case !errors.Is(err, store.ErrNotFound):
			t.Fatalf("store get %s: %v", tn, err)
		}
	}
	return n
}

// 5. Admin login flood: requests with bad tokens from one address at a fixed rate, while a
// legitimate admin from another address reads a key at goodRate.
func attackLogins(t *testing.T) {
	s := startAbuseStack(t, replicaOptions{})
	if _, _, st, err := s.rep.key(context.Background(), "tenant-good"); st != http.StatusOK {
		t.Fatalf("create tenant-good: %d %v", st, err)
	}
	o := &outcome{attack: "admin login flood"}
	admin := &goodClient{name: "admin", do: func(ctx context.Context) error {
		_, _, st, err := s.rep.key(ctx, "tenant-good")
		if err != nil {
			return err
		}
		if st != http.StatusOK {
			return statusError{status: st}
		}
		return nil
	}}
	res := underAttack(t, s, admin, o, attackSpec{Kind: kindLogins, Target: s.rep.admin, Rate: loginRate})
	o.rate = fmt.Sprintf("%d bad tokens from %s at %d/s, for %v", res.Sent, attackerAddr, loginRate, hold())
}
