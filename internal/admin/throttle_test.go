package admin

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/rkms/rkms/internal/authlimit"
	"github.com/rkms/rkms/internal/keyservice"
	"github.com/rkms/rkms/keyring/keyringtest"
)

// TestFailedAuthThrottle: an address that fails authentication authlimit.Failures times in a window
// gets 429 with Retry-After, even with the right token, until the window ends; other addresses
// are not affected; every refusal is counted.
func TestFailedAuthThrottle(t *testing.T) {
	const token = "throttle-token-0123456789"
	var mu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	counts := map[bool]int{}
	h, err := newHandler(keyringtest.NewFake(), keyservice.Options{Token: token,
		Throttle:      authlimit.New(func() time.Time { mu.Lock(); defer mu.Unlock(); return now }),
		OnAuthFailure: func(throttled bool) { mu.Lock(); counts[throttled]++; mu.Unlock() }}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	do := func(remote, tok string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/key?id=tenant-a", nil)
		req.RemoteAddr = remote
		req.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	for i := range authlimit.Failures {
		if w := do("192.0.2.1:"+string(rune('a'+i)), "wrong"); w.Code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i, w.Code)
		}
	}
	w := do("192.0.2.1:999", token)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Fatalf("right token after %d failures: %d, Retry-After %q; want 429 with Retry-After", authlimit.Failures, w.Code, w.Header().Get("Retry-After"))
	}
	if w := do("192.0.2.2:1", token); w.Code != http.StatusOK {
		t.Fatalf("another address: %d", w.Code)
	}
	mu.Lock()
	now = now.Add(authlimit.Window)
	mu.Unlock()
	if w := do("192.0.2.1:1", token); w.Code != http.StatusOK {
		t.Fatalf("after the window: %d", w.Code)
	}
	mu.Lock()
	defer mu.Unlock()
	if counts[false] != authlimit.Failures || counts[true] != 1 {
		t.Errorf("counted %d refused, %d throttled; want %d and 1", counts[false], counts[true], authlimit.Failures)
	}
}
