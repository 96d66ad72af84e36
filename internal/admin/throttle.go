package admin

import (
	"net"
	"sync"
	"time"
)

// Failed-authentication throttling: each remote address may fail at most authFailures times
// per authWindow; beyond that its requests get 429 with Retry-After until the window ends,
// whatever token they carry, so that a token cannot be guessed at line rate.
const (
	authFailures = 10
	authWindow   = time.Minute
	// maxTracked bounds the addresses tracked at once. When it is reached and no window has
	// expired, new addresses are not tracked (their failures are not throttled) rather than
	// evicting others: a flood of addresses must not unlock an address that is being throttled.
	maxTracked = 10000
)

type throttle struct {
	mu    sync.Mutex
	now   func() time.Time
	addrs map[string]*failures
}

type failures struct {
	n     int
	start time.Time
}

func newThrottle(now func() time.Time) *throttle {
	if now == nil {
		now = time.Now
	}
	return &throttle{now: now, addrs: map[string]*failures{}}
}

// blocked reports whether remote is throttled, and for how long still.
func (t *throttle) blocked(remote string) (bool, time.Duration) {
	host := hostOf(remote)
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.addrs[host]
	if !ok {
		return false, 0
	}
	left := authWindow - t.now().Sub(f.start)
	if left <= 0 {
		delete(t.addrs, host)
		return false, 0
	}
	return f.n >= authFailures, left
}

// fail records a failed authentication from remote.
func (t *throttle) fail(remote string) {
	host := hostOf(remote)
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.addrs[host]
	if ok && now.Sub(f.start) >= authWindow {
		ok = false
	}
	if !ok {
		if len(t.addrs) >= maxTracked {
			for h, g := range t.addrs {
				if now.Sub(g.start) >= authWindow {
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
