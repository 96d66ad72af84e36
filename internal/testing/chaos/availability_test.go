package chaos

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// expect is what RELIABILITY.md ("Behaviour under faults") lets fail while a phase's fault is
// held and shortly after it ends. Everything else must succeed: an existing tenant's key is
// cached by both replicas (served past its TTL during an outage), so existing tenants never
// fail, except for the requests in flight on a replica that is killed. Invariant 3 checks
// separately that every failure is a clean 503 or 504.
type expect struct {
	newTenants bool // a new key cannot be created: fewer than min_regions regions, or no store
	reads      bool // a record whose key the serving replica does not hold: no store to read it from
	inFlight   bool // a replica is killed: the requests in flight on it fail, at most one per client worker
}

// recoverWithin bounds how long failures may go on after a fault ends: the replicas' breaker
// cooldown (1 s) and their probe interval (0.5 s) before a region is used again, plus margin.
const recoverWithin = 2500 * time.Millisecond

// allows reports whether the phase's fault may fail a request of this kind.
func (e expect) allows(kind string) bool {
	return (kind == opPostNew && e.newTenants) || (kind == opGet && e.reads)
}

func (e expect) String() string {
	if e == (expect{}) {
		return "nothing fails"
	}
	var may []string
	if e.newTenants {
		may = append(may, "new tenants")
	}
	if e.reads {
		may = append(may, "reads")
	}
	if e.inFlight {
		may = append(may, "the requests in flight on the killed replica")
	}
	return "only " + strings.Join(may, " and ") + " may fail"
}

// checkAvailability holds each phase to its expectation. A failure is excused when its
// request's span overlaps a fault window (from the fault until recoverWithin after it ended)
// whose phase allows it: a request started just before a fault is not blamed on the phase
// before. Unexcused failures are breaches, reported against the phase the request started in.
// It also returns, per phase, what was held against it.
func checkAvailability(phases []*phase, results []result, workers int) (breaches, held []string) {
	inFlight := make([]int, len(phases))
	unexcused := make([]int, len(phases))
	for _, r := range results {
		if r.ok || excused(phases, r, inFlight, workers) {
			continue
		}
		for i, p := range phases {
			if r.start.Before(p.start) || !r.start.Before(p.end) {
				continue
			}
			if unexcused[i]++; unexcused[i] <= 5 {
				when := r.start.Sub(p.start).Round(time.Millisecond).String() + " into the phase"
				if p.fault != nil && !r.start.Before(p.healed) {
					when = r.start.Sub(p.healed).Round(time.Millisecond).String() + " after the fault ended"
				}
				breaches = append(breaches, fmt.Sprintf("%s: %s %s failed %s: %s", p.name, r.kind, r.tenant, when, failureText(r)))
			}
		}
	}
	for i, p := range phases {
		if unexcused[i] > 5 {
			breaches = append(breaches, fmt.Sprintf("%s: %d failures in all", p.name, unexcused[i]))
		}
		rule := p.expect.String()
		if p.fault != nil && p.expect != (expect{}) {
			rule += fmt.Sprintf(", until %s after the fault ends", recoverWithin)
		}
		held = append(held, fmt.Sprintf("%s: %s (%d failures outside that)", p.name, rule, unexcused[i]))
	}
	return breaches, held
}

// excused reports whether a fault window the failed request r overlaps allows it; inFlight
// counts the failures charged to each killed replica.
func excused(phases []*phase, r result, inFlight []int, workers int) bool {
	for i, p := range phases {
		if p.fault == nil {
			continue
		}
		from, to := p.start, p.healed.Add(recoverWithin)
		if r.end.Before(from) || !r.start.Before(to) {
			continue
		}
		if p.expect.allows(r.kind) {
			return true
		}
		if p.expect.inFlight && inFlight[i] < workers {
			inFlight[i]++
			return true
		}
	}
	return false
}

func failureText(r result) string {
	if r.status == 0 {
		return "transport error: " + r.errText
	}
	return fmt.Sprintf("status %d %.80q", r.status, r.bodyHead)
}

// TestCheckAvailability checks the per-phase verdict on a synthetic run: which failures each
// fault excuses, the window after it, and the budget of a killed replica.
func TestCheckAvailability(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	noop := func(*testing.T) {}
	phases := []*phase{
		{name: "steady", start: at(0), healed: at(3), end: at(3)},
		{name: "kill region", fault: noop, start: at(3), healed: at(6), end: at(9)},
		{name: "kill 2 of 3", fault: noop, start: at(9), healed: at(12), end: at(15), expect: expect{newTenants: true}},
		{name: "restart replica", fault: noop, start: at(15), healed: at(16), end: at(19), expect: expect{inFlight: true}},
	}
	fail := func(kind string, from, to float64) result {
		return result{kind: kind, tenant: "t", start: at(from), end: at(to), status: 503}
	}
	ok := result{kind: opPostExisting, start: at(1), end: at(1.1), ok: true, status: 201}
	for _, tc := range []struct {
		name     string
		results  []result
		breaches int
	}{
		{"all succeeded", []result{ok}, 0},
		{"baseline failure", []result{fail(opPostNew, 1, 1.1)}, 1},
		{"existing tenant while one region is down", []result{fail(opPostExisting, 4, 4.1)}, 1},
		{"new tenant while one region is down", []result{fail(opPostNew, 4, 4.1)}, 1},
		{"read while one region is down", []result{fail(opGet, 4, 4.1)}, 1},
		{"new tenant with two regions down", []result{fail(opPostNew, 10, 10.1)}, 0},
		{"existing tenant with two regions down", []result{fail(opPostExisting, 10, 10.1)}, 1},
		{"new tenant just after the heal", []result{fail(opPostNew, 13, 13.1)}, 0},
		{"new tenant long after the heal", []result{fail(opPostNew, 14.6, 14.7)}, 1},
		{"started before the fault, failed in it", []result{fail(opPostNew, 8.9, 9.2)}, 0},
		{"killed replica: in flight", []result{fail(opPostExisting, 15.1, 15.2), fail(opGet, 15.1, 15.3)}, 0},
		{"killed replica: over budget", func() []result {
			var rs []result
			for range 3 {
				rs = append(rs, fail(opPostExisting, 15.1, 15.2))
			}
			return rs
		}(), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			breaches, held := checkAvailability(phases, tc.results, 2)
			if len(breaches) != tc.breaches {
				t.Fatalf("breaches %q, want %d", breaches, tc.breaches)
			}
			if len(held) != len(phases) {
				t.Fatalf("summary %q", held)
			}
		})
	}
}
