package keyring_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rkms/rkms/keyring"
	"github.com/rkms/rkms/keyring/internal/fakeregion"
)

func TestBreakerOpensThenProbeClosesIt(t *testing.T) {
	e := newEnv(t, 3)
	writer := e.keyring(t, keyring.Options{})
	for i := range 10 {
		mustGet(t, writer, fmt.Sprintf("k%d", i))
	}
	k := e.keyring(t, keyring.Options{BreakerThreshold: 2, BreakerCooldown: 10 * time.Second})
	e.fakes[0].Down(true)
	e.reset()

	// Two cold reads: each tries r1 first, fails, falls back to r2. Then the breaker opens.
	for i := range 2 {
		mustGet(t, k, fmt.Sprintf("k%d", i))
	}
	if got := e.fakes[0].Calls(fakeregion.Decrypt); got != 2 {
		t.Fatalf("r1 got %d calls before opening, want 2", got)
	}
	st := k.RegionStatus()
	if st[0].Healthy || st[0].Breaker != "open" || !st[1].Healthy || !st[2].Healthy {
		t.Fatalf("region status %+v, want r1 open", st)
	}
	if err := k.Ready(context.Background()); err != nil {
		t.Fatalf("Ready with 2 of 3 healthy: %v", err)
	}

	// Open breaker: each cold read makes exactly one KMS call, to a healthy region.
	e.reset()
	for i := 2; i < 6; i++ {
		mustGet(t, k, fmt.Sprintf("k%d", i))
		if e.fakes[0].Total() != 0 || e.totalCalls() != int64(i-1) {
			t.Fatalf("read %d: r1=%d total=%d, want 0 and %d", i, e.fakes[0].Total(), e.totalCalls(), i-1)
		}
	}

	// Before the cooldown nothing is probed.
	k.ProbeDue(context.Background())
	if e.fakes[0].Total() != 0 {
		t.Fatal("probed before the cooldown")
	}
	// After it, one trial call; the region is still down, so the breaker stays open.
	e.clock.Advance(11 * time.Second)
	k.ProbeDue(context.Background())
	if got := e.fakes[0].Calls(fakeregion.Encrypt); got != 1 {
		t.Fatalf("probe made %d calls, want 1", got)
	}
	if k.RegionStatus()[0].Healthy {
		t.Fatal("failed probe closed the breaker")
	}
	k.ProbeDue(context.Background())
	if got := e.fakes[0].Total(); got != 1 {
		t.Fatal("re-probed before a new cooldown")
	}

	// The region comes back; after the next cooldown the probe closes the breaker.
	e.fakes[0].Down(false)
	e.clock.Advance(11 * time.Second)
	k.ProbeDue(context.Background())
	if st := k.RegionStatus()[0]; !st.Healthy || st.Breaker != "closed" {
		t.Fatalf("after a good probe: %+v", st)
	}
	e.reset()
	mustGet(t, k, "k7")
	if e.fakes[0].Calls(fakeregion.Decrypt) != 1 || e.totalCalls() != 1 {
		t.Fatal("closed region r1 is not preferred again")
	}
	if s := regionStats(t, k, "r1"); s.BreakerOpens != 1 || s.Probe != 2 {
		t.Fatalf("r1 stats %+v, want 1 open and 2 probes", s)
	}
}

func TestAllBreakersOpenFailsFast(t *testing.T) {
	e := newEnv(t, 2)
	mustGet(t, e.keyring(t, keyring.Options{}), "a")
	mustGet(t, e.keyring(t, keyring.Options{}), "b")
	k := e.keyring(t, keyring.Options{BreakerThreshold: 1})
	for _, f := range e.fakes {
		f.Down(true)
	}
	if _, err := k.Get(context.Background(), "a"); !errors.Is(err, keyring.ErrUnavailable) {
		t.Fatalf("Get: %v", err)
	}
	e.reset()
	_, err := k.Get(context.Background(), "b")
	if !errors.Is(err, keyring.ErrUnavailable) {
		t.Fatalf("Get with every breaker open: %v", err)
	}
	if e.totalCalls() != 0 {
		t.Fatalf("%d KMS calls with every breaker open, want 0", e.totalCalls())
	}
	if err := k.Ready(context.Background()); !errors.Is(err, keyring.ErrUnavailable) {
		t.Fatalf("Ready with no healthy region: %v", err)
	}
}

func TestRejectionsDoNotOpenTheBreaker(t *testing.T) {
	e := newEnv(t, 2)
	w := e.keyring(t, keyring.Options{})
	for i := range 5 {
		mustGet(t, w, fmt.Sprintf("k%d", i))
	}
	k := e.keyring(t, keyring.Options{BreakerThreshold: 2})
	e.fakes[0].Fail(fakeregion.Decrypt, fmt.Errorf("%w: access denied", keyring.ErrRegionRejected))
	for i := range 5 {
		mustGet(t, k, fmt.Sprintf("k%d", i))
	}
	if st := k.RegionStatus()[0]; !st.Healthy {
		t.Fatalf("refusals opened the breaker: %+v", st)
	}
	if s := regionStats(t, k, "r1"); s.Rejections != 5 || s.Failures != 0 {
		t.Fatalf("r1 stats %+v", s)
	}
}

func TestRegionsOrderedByLatency(t *testing.T) {
	e := newEnv(t, 2)
	w := e.keyring(t, keyring.Options{})
	for i := range 10 {
		mustGet(t, w, fmt.Sprintf("k%d", i))
	}
	k := e.keyring(t, keyring.Options{})
	e.fakes[0].Latency(20 * time.Millisecond)
	// The first read uses the preferred r1 and learns it is slow; once r2 has fallen back, it is
	// sampled too, and the faster one wins.
	e.fakes[0].Down(true)
	mustGet(t, k, "k0") // r1 fails fast (down), r2 answers: r2 gets a latency sample
	e.fakes[0].Down(false)
	mustGet(t, k, "k1") // r1 first by bucket (unsampled), answers in 20ms
	e.reset()
	for i := 2; i < 6; i++ {
		mustGet(t, k, fmt.Sprintf("k%d", i))
	}
	if e.fakes[0].Total() != 0 || e.fakes[1].Calls(fakeregion.Decrypt) != 4 {
		t.Fatalf("calls r1=%d r2=%d, want the faster r2 only", e.fakes[0].Total(), e.fakes[1].Total())
	}
	st := k.RegionStatus()
	if st[0].LatencyEWMA < 10*time.Millisecond || st[1].LatencyEWMA >= st[0].LatencyEWMA {
		t.Fatalf("latency EWMAs %v and %v", st[0].LatencyEWMA, st[1].LatencyEWMA)
	}
}
