package extproc

import (
	"context"
	"sync"
	"time"
)

// keyCtx bounds the key lookups of one message by a deadline without arming a timer up front.
// Arming one (context.WithTimeout) costs more than a cached key lookup, which never waits; the
// timer is made only when a lookup asks for Done (a cache miss that goes to the store or KMS).
// Deadline and Err honour the deadline either way.
type keyCtx struct {
	parent   context.Context
	deadline time.Time
	reqID    string // the HTTP request's id, for [RequestID]

	mu      sync.Mutex
	armed   context.Context // nil until Done or AfterFunc is called
	cancel  context.CancelFunc
	stopped bool
}

var _ context.Context = (*keyCtx)(nil)

// withKeyTimeout returns a context that ends at now+d (or with parent, if sooner). Release it
// with its stop method.
func withKeyTimeout(parent context.Context, d time.Duration) *keyCtx {
	c := &keyCtx{parent: parent, deadline: time.Now().Add(d)}
	if pd, ok := parent.Deadline(); ok && pd.Before(c.deadline) {
		c.deadline = pd
	}
	return c
}

func (c *keyCtx) Deadline() (time.Time, bool) { return c.deadline, true }
func (c *keyCtx) Done() <-chan struct{}       { return c.arm().Done() }

// Value answers [RequestID]'s key itself (no context.WithValue allocation per message).
func (c *keyCtx) Value(key any) any {
	if _, ok := key.(requestIDKey); ok {
		return c.reqID
	}
	return c.parent.Value(key)
}

// Err is parent's error, else DeadlineExceeded once the deadline has passed, else nil.
func (c *keyCtx) Err() error {
	c.mu.Lock()
	armed := c.armed
	c.mu.Unlock()
	if armed != nil {
		return armed.Err()
	}
	if err := c.parent.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// AfterFunc lets contexts derived from c (a key lookup's own timeouts) follow it without a
// goroutine each (see context.AfterFunc).
func (c *keyCtx) AfterFunc(f func()) func() bool { return context.AfterFunc(c.arm(), f) }

func (c *keyCtx) arm() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.armed == nil {
		c.armed, c.cancel = context.WithDeadline(c.parent, c.deadline)
		if c.stopped {
			c.cancel()
		}
	}
	return c.armed
}

// stop ends the context: a lookup still holding it sees it done.
func (c *keyCtx) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	if c.cancel != nil {
		c.cancel()
	}
}

type requestIDKey struct{}

// RequestID returns the id of the HTTP request (x-request-id, which Envoy sets) on whose behalf a
// [Keys] method was called, when ctx is the context that method received; "" otherwise. Keys
// implementations use it to attribute key creation (audit records); the gRPC peer (Envoy) is in
// ctx as usual (google.golang.org/grpc/peer).
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}
