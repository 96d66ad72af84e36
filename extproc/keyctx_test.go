package extproc

import (
	"context"
	"errors"
	"testing"
	"time"
)

type ctxKey struct{}

func TestKeyCtx(t *testing.T) {
	for _, tc := range []struct {
		name    string
		parent  func() (context.Context, context.CancelFunc)
		timeout time.Duration
		act     func(c *keyCtx, stop, cancelParent func())
		wantErr error // after act; nil: still live
		armed   bool  // a timer was made
	}{
		{"cached lookup: never armed", background, time.Hour,
			func(c *keyCtx, _, _ func()) { _, _ = c.Deadline(); _ = c.Value(ctxKey{}) }, nil, false},
		{"Err past the deadline without Done", background, time.Millisecond,
			func(*keyCtx, func(), func()) { time.Sleep(5 * time.Millisecond) }, context.DeadlineExceeded, false},
		{"Done closes at the deadline", background, 5 * time.Millisecond,
			func(c *keyCtx, _, _ func()) { waitDone(t, c.Done()) }, context.DeadlineExceeded, true},
		{"parent canceled, not armed", background, time.Hour,
			func(_ *keyCtx, _, cancel func()) { cancel() }, context.Canceled, false},
		{"parent canceled while waiting", background, time.Hour,
			func(c *keyCtx, _, cancel func()) { d := c.Done(); cancel(); waitDone(t, d) }, context.Canceled, true},
		{"stop ends a waiting lookup", background, time.Hour,
			func(c *keyCtx, stop, _ func()) { d := c.Done(); stop(); waitDone(t, d) }, context.Canceled, true},
		{"Done after stop is closed", background, time.Hour,
			func(c *keyCtx, stop, _ func()) { stop(); waitDone(t, c.Done()) }, context.Canceled, true},
		{"derived context follows", background, 5 * time.Millisecond,
			func(c *keyCtx, _, _ func()) {
				d, cancel := context.WithTimeout(c, time.Hour)
				defer cancel()
				waitDone(t, d.Done())
			}, context.DeadlineExceeded, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent, cancelParent := tc.parent()
			defer cancelParent()
			c := withKeyTimeout(parent, tc.timeout)
			stop := c.stop
			defer stop()
			tc.act(c, stop, cancelParent)
			if err := c.Err(); !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Errorf("Err() = %v, want %v", err, tc.wantErr)
			}
			if (c.armed != nil) != tc.armed {
				t.Errorf("armed = %v, want %v", c.armed != nil, tc.armed)
			}
			if v := c.Value(ctxKey{}); v != "v" {
				t.Errorf("Value = %v, want the parent's", v)
			}
		})
	}
}

func TestKeyCtxDeadline(t *testing.T) {
	parent, cancel := context.WithTimeout(context.WithValue(context.Background(), ctxKey{}, "v"), time.Second)
	defer cancel()
	pd, _ := parent.Deadline()
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		want    func(time.Time) bool
	}{
		{"own deadline when sooner", time.Millisecond, func(d time.Time) bool { return d.Before(pd) }},
		{"parent's deadline when sooner", time.Hour, func(d time.Time) bool { return d.Equal(pd) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := withKeyTimeout(parent, tc.timeout)
			stop := c.stop
			defer stop()
			d, ok := c.Deadline()
			if !ok || !tc.want(d) {
				t.Errorf("Deadline() = %v, %v (parent's %v)", d, ok, pd)
			}
		})
	}
}

func background() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "v"))
}

func waitDone(t *testing.T, d <-chan struct{}) {
	t.Helper()
	select {
	case <-d:
	case <-time.After(5 * time.Second):
		t.Fatal("context not done after 5 s")
	}
}
