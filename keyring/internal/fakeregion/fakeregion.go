// Package fakeregion wraps a keyring.Region for tests: it counts calls and injects failures,
// latency and stalls. It is test support only; the product never imports it.
package fakeregion

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rkms/rkms/keyring"
)

// Op names a region operation.
type Op int

// Operations, for Calls and per-operation failures.
const (
	Generate Op = iota
	Encrypt
	Decrypt
	numOps
)

// Region is a keyring.Region wrapper with counters and fault injection. Safe for concurrent use.
type Region struct {
	inner keyring.Region
	calls [numOps]atomic.Int64

	mu      sync.Mutex
	down    bool          // every call fails with ErrRegionUnavailable
	stalled bool          // every call blocks until its context ends
	latency time.Duration // added before each call
	failOp  [numOps]error // per-operation injected error
}

var _ keyring.Region = (*Region)(nil)

// Wrap returns a fake around inner.
func Wrap(inner keyring.Region) *Region { return &Region{inner: inner} }

// Down makes every call fail at once with an error wrapping keyring.ErrRegionUnavailable
// (like a refused connection), or restores the region.
func (r *Region) Down(down bool) { r.mu.Lock(); r.down = down; r.mu.Unlock() }

// Stall makes every call block until its context ends (like a process that accepts connections
// but never answers), or restores the region.
func (r *Region) Stall(stalled bool) { r.mu.Lock(); r.stalled = stalled; r.mu.Unlock() }

// Latency adds d before each call.
func (r *Region) Latency(d time.Duration) { r.mu.Lock(); r.latency = d; r.mu.Unlock() }

// Fail makes op return err (nil restores it).
func (r *Region) Fail(op Op, err error) { r.mu.Lock(); r.failOp[op] = err; r.mu.Unlock() }

// Calls returns how many times op was called (including failed calls).
func (r *Region) Calls(op Op) int64 { return r.calls[op].Load() }

// Total returns the number of calls of every kind.
func (r *Region) Total() int64 {
	var n int64
	for i := range r.calls {
		n += r.calls[i].Load()
	}
	return n
}

// Reset zeroes the counters.
func (r *Region) Reset() {
	for i := range r.calls {
		r.calls[i].Store(0)
	}
}

// Name implements keyring.Region.
func (r *Region) Name() string { return r.inner.Name() }

// KeyID implements keyring.Region.
func (r *Region) KeyID() string { return r.inner.KeyID() }

func (r *Region) before(ctx context.Context, op Op) error {
	r.calls[op].Add(1)
	r.mu.Lock()
	down, stalled, latency, fail := r.down, r.stalled, r.latency, r.failOp[op]
	r.mu.Unlock()
	if down {
		return fmt.Errorf("%w: fake %s: connection refused", keyring.ErrRegionUnavailable, r.Name())
	}
	if stalled {
		<-ctx.Done()
		return fmt.Errorf("%w: fake %s: %w", keyring.ErrRegionUnavailable, r.Name(), ctx.Err())
	}
	if latency > 0 {
		t := time.NewTimer(latency)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("%w: fake %s: %w", keyring.ErrRegionUnavailable, r.Name(), ctx.Err())
		}
	}
	return fail
}

// GenerateDataKey implements keyring.Region.
func (r *Region) GenerateDataKey(ctx context.Context, encCtx map[string]string) ([]byte, []byte, error) {
	if err := r.before(ctx, Generate); err != nil {
		return nil, nil, err
	}
	return r.inner.GenerateDataKey(ctx, encCtx)
}

// Encrypt implements keyring.Region.
func (r *Region) Encrypt(ctx context.Context, plaintext []byte, encCtx map[string]string) ([]byte, error) {
	if err := r.before(ctx, Encrypt); err != nil {
		return nil, err
	}
	return r.inner.Encrypt(ctx, plaintext, encCtx)
}

// Decrypt implements keyring.Region.
func (r *Region) Decrypt(ctx context.Context, wrapped []byte, encCtx map[string]string) ([]byte, error) {
	if err := r.before(ctx, Decrypt); err != nil {
		return nil, err
	}
	return r.inner.Decrypt(ctx, wrapped, encCtx)
}
