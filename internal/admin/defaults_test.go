package admin

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rkms/rkms/internal/keyservice"
	"github.com/rkms/rkms/keyring"
	"github.com/rkms/rkms/keyring/keyringtest"
)

// deadlineKeys records the deadline of the context each call gets.
type deadlineKeys struct {
	*keyringtest.Fake
	mu        sync.Mutex
	deadlines []time.Duration // time left when the call began; -1: no deadline
}

func (k *deadlineKeys) note(ctx context.Context) {
	left := time.Duration(-1)
	if d, ok := ctx.Deadline(); ok {
		left = time.Until(d)
	}
	k.mu.Lock()
	k.deadlines = append(k.deadlines, left)
	k.mu.Unlock()
}

func (k *deadlineKeys) Get(ctx context.Context, id string) (keyring.DataKey, error) {
	k.note(ctx)
	return k.Fake.Get(ctx, id)
}

func (k *deadlineKeys) Ready(ctx context.Context) error {
	k.note(ctx)
	return k.Fake.Ready(ctx)
}

func (k *deadlineKeys) last() time.Duration {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.deadlines[len(k.deadlines)-1]
}

// TestOptionDefaults: a zero Timeout means 5 s per key operation (not an immediate deadline),
// a set one is kept; /readyz bounds Ready at 2 s; a zero MaxBodyBytes means 64 KiB.
func TestOptionDefaults(t *testing.T) {
	within := func(t *testing.T, what string, got, want time.Duration) {
		t.Helper()
		if got < want-time.Second || got > want {
			t.Errorf("%s: %v left, want about %v", what, got, want)
		}
	}
	for _, tc := range []struct {
		timeout, want time.Duration
	}{{0, 5 * time.Second}, {-time.Second, 5 * time.Second}, {3 * time.Second, 3 * time.Second}} {
		k := &deadlineKeys{Fake: keyringtest.NewFake()}
		h, err := newHandler(k, keyservice.Options{Token: token, Timeout: tc.timeout}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, target := range []string{"/key?id=alice", "/readyz"} {
			req := httptest.NewRequest("GET", target, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				t.Fatalf("GET %s: %d %s", target, rec.Code, rec.Body)
			}
			want := tc.want
			if target == "/readyz" {
				want = 2 * time.Second
			}
			within(t, "Timeout "+tc.timeout.String()+", "+target, k.last(), want)
		}
	}

	h, err := newHandler(keyringtest.NewFake(), keyservice.Options{Token: token}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		size, want int
	}{{1, http.StatusOK}, {DefaultMaxBodyBytes, http.StatusOK}, {DefaultMaxBodyBytes + 1, http.StatusRequestEntityTooLarge}} {
		req := httptest.NewRequest("GET", "/key?id=alice", strings.NewReader(strings.Repeat("x", tc.size)))
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("default limit, %d-byte body: %d, want %d", tc.size, rec.Code, tc.want)
		}
	}
}
