// Package authlimit throttles failed authentications per remote address, shared by the admin
// HTTP API and the gRPC key API so that a token cannot be guessed at line rate through either.
package authlimit

import (
	"net"
	"sync"
	"time"
)

// Each remote address may fail at most Failures times per Window; beyond that its requests are
// refused (HTTP 429 with Retry-After, gRPC RESOURCE_EXHAUSTED) until the window ends, whatever
// token they carry.
const (
	Failures = 10
	Window   = time.Minute
	// maxTracked bounds the addresses tracked at once. When it is reached and no window has
	// expired, new addresses are not tracked (their failures are not throttled) rather than
	// evicting others: a flood of addresses must not unlock an address that is being throttled.
	maxTracked = 10000
)

// Throttle counts failed authentications per address. It is safe for concurrent use.
type Throttle struct {
	mu    sync.Mutex
	now   func() time.Time
	addrs map[string]*failures
}

type failures struct {
	n     int
	start time.Time
}

// New returns a Throttle on the clock now (nil: time.Now).
func New(now func() time.Time) *Throttle {
	if now == nil {
		now = time.Now
	}
	return &Throttle{now: now, addrs: map[string]*failures{}}
}

// Blocked reports whether remote (an address, with or without port) is throttled, and for how
// long still.
func (t *Throttle) Blocked(remote string) (bool, time.Duration) {
	host := hostOf(remote)
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.addrs[host]
	if !ok {
		return false, 0
	}
	left := Window - t.now().Sub(f.start)
	if left <= 0 {
		delete(t.addrs, host)
		return false, 0
	}
	return f.n >= Failures, left
}

// Fail records a failed authentication from remote.
func (t *Throttle) Fail(remote string) {
	host := hostOf(remote)
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.addrs[host]
	if ok && now.Sub(f.start) >= Window {
		ok = false
	}
	if !ok {
		if len(t.addrs) >= maxTracked {
			for h, g := range t.addrs {
				if now.Sub(g.start) >= Window {
					delete(t.addrs, h)
				}
			}
			if len(t.addrs) >= maxTracked {
				return
			}
		}
		f = &failures{start: now}
		t.addrs[host] = f
	}
	f.n++
}

// hostOf is the address without its port: one client, many connections.
func hostOf(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}
