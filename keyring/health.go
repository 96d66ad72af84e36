package keyring

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// breakerState is a region's circuit-breaker state.
type breakerState uint8

const (
	closed   breakerState = iota // calls flow
	open                         // calls skipped until the cooldown has passed
	halfOpen                     // one trial call (a probe) in flight
)

func (s breakerState) String() string {
	switch s {
	case open:
		return "open"
	case halfOpen:
		return "half-open"
	default:
		return "closed"
	}
}

// op names a region operation, for counters and errors.
type op uint8

const (
	opGenerate op = iota
	opEncrypt
	opDecrypt
	opProbe
	numOps
)

func (o op) String() string {
	return [...]string{"generate data key", "encrypt", "decrypt", "probe"}[o]
}

// ewmaAlpha weighs each new latency sample.
const ewmaAlpha = 0.2

// latencyBucket is the resolution at which latencies are compared when ordering regions: regions
// whose EWMAs fall in the same power-of-two bucket of this unit keep their configured order.
const latencyBucket = 250 * time.Microsecond

// regionState is the keyring's view of one region: breaker, latency and counters.
type regionState struct {
	Region
	name string

	mu       sync.Mutex
	state    breakerState
	fails    int // consecutive unavailability failures
	openedAt time.Time
	ewma     float64 // nanoseconds; 0 until the first answer
	sampled  bool

	calls      [numOps]atomic.Uint64
	failures   atomic.Uint64
	rejections atomic.Uint64
	opens      atomic.Uint64
}

// health tracks all regions.
type health struct {
	regions   []*regionState
	threshold int
	cooldown  time.Duration
	timeout   time.Duration
	now       func() time.Time
	log       *slog.Logger
	onClose   func() // called when a breaker closes again (triggers repair)
}

// available reports whether user traffic may call the region (breaker closed).
func (r *regionState) available() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state == closed
}

// ordered returns the regions user traffic may call, healthiest and fastest first, and the
// regions skipped because their breaker is open or probing.
func (h *health) ordered(regions []*regionState) (usable, skipped []*regionState) {
	type snap struct {
		r      *regionState
		bucket int
	}
	snaps := make([]snap, 0, len(regions))
	for _, r := range regions {
		r.mu.Lock()
		st, ewma := r.state, r.ewma
		r.mu.Unlock()
		if st != closed {
			skipped = append(skipped, r)
			continue
		}
		snaps = append(snaps, snap{r, bits.Len64(uint64(ewma / float64(latencyBucket)))})
	}
	slices.SortStableFunc(snaps, func(a, b snap) int { return a.bucket - b.bucket })
	usable = make([]*regionState, len(snaps))
	for i, s := range snaps {
		usable[i] = s.r
	}
	return usable, skipped
}

// call runs fn against r with the per-call timeout, counts it and feeds the breaker. The error
// wraps ErrRegionUnavailable or ErrRegionRejected, or the caller's context error.
func (h *health) call(ctx context.Context, r *regionState, o op, fn func(ctx context.Context) error) error {
	r.calls[o].Add(1)
	cctx, cancel := context.WithTimeout(ctx, h.timeout)
	start := time.Now()
	err := fn(cctx)
	elapsed := time.Since(start)
	timedOut := cctx.Err() != nil
	cancel()
	switch {
	case err == nil:
		h.answered(r, elapsed, o == opProbe)
		return nil
	case ctx.Err() != nil:
		// The caller gave up: say nothing about the region.
		h.abandoned(r, o == opProbe)
		return fmt.Errorf("%w: %w", ctx.Err(), err)
	case errors.Is(err, ErrRegionRejected) && !errors.Is(err, ErrRegionUnavailable):
		r.rejections.Add(1)
		h.answered(r, elapsed, o == opProbe)
		return err
	default:
		r.failures.Add(1)
		h.failed(r, o == opProbe, err)
		if timedOut && !errors.Is(err, ErrRegionUnavailable) {
			return fmt.Errorf("%w: no answer within %v: %w", ErrRegionUnavailable, h.timeout, err)
		}
		if !errors.Is(err, ErrRegionUnavailable) {
			return fmt.Errorf("%w: %w", ErrRegionUnavailable, err)
		}
		return err
	}
}

// answered records that r answered (successfully or with a refusal) after elapsed.
func (h *health) answered(r *regionState, elapsed time.Duration, probe bool) {
	r.mu.Lock()
	r.fails = 0
	if r.sampled {
		r.ewma += ewmaAlpha * (float64(elapsed) - r.ewma)
	} else {
		r.ewma, r.sampled = float64(elapsed), true
	}
	reopened := probe && r.state == halfOpen
	if reopened {
		r.state = closed
	}
	r.mu.Unlock()
	if reopened {
		h.log.Info("kms region answered again; circuit breaker closed", "region", r.name)
		if h.onClose != nil {
			h.onClose()
		}
	}
}

// failed records an unavailability failure of r.
func (h *health) failed(r *regionState, probe bool, cause error) {
	r.mu.Lock()
	r.fails++
	opened := false
	switch {
	case probe && r.state == halfOpen:
		r.state, r.openedAt = open, h.now()
	case r.state == closed && r.fails >= h.threshold:
		r.state, r.openedAt = open, h.now()
		r.opens.Add(1)
		opened = true
	}
	fails := r.fails
	r.mu.Unlock()
	if opened {
		h.log.Warn("kms region unavailable; circuit breaker opened", "region", r.name,
			"consecutive_failures", fails, "cooldown", h.cooldown, "err", cause)
	}
}

// abandoned records that a call to r was cancelled by its caller.
func (h *health) abandoned(r *regionState, probe bool) {
	if !probe {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state == halfOpen {
		r.state = open // probe again at the next chance
	}
}

// dueForProbe returns the open regions whose cooldown has passed, switching them to half-open.
func (h *health) dueForProbe() []*regionState {
	now := h.now()
	var due []*regionState
	for _, r := range h.regions {
		r.mu.Lock()
		if r.state == open && !now.Before(r.openedAt.Add(h.cooldown)) {
			r.state = halfOpen
			due = append(due, r)
		}
		r.mu.Unlock()
	}
	return due
}

// probePurpose is the encryption context value of the trial call made to a half-open region;
// the ciphertext is discarded.
const probePurpose = "health-probe"

// probe makes the single trial call for a half-open region: an Encrypt of zeros.
func (h *health) probe(ctx context.Context, r *regionState) error {
	var zeros [DataKeySize]byte
	return h.call(ctx, r, opProbe, func(ctx context.Context) error {
		_, err := r.Encrypt(ctx, zeros[:], map[string]string{"rkms:purpose": probePurpose})
		return err
	})
}

// countUsable returns how many of regions have a closed breaker.
func countUsable(regions []*regionState) int {
	n := 0
	for _, r := range regions {
		if r.available() {
			n++
		}
	}
	return n
}
