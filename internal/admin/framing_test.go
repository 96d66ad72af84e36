package admin

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rkms/rkms/internal/authlimit"
	"github.com/rkms/rkms/internal/keyservice"
	"github.com/rkms/rkms/keyring/keyringtest"
)

// TestHeaderLimitIsExact: requests whose request line and headers take exactly MaxHeaderBytes as
// sent over HTTP/1.1 pass, one byte more is 431. The size is counted here from the framing
// itself: "METHOD SP URI SP PROTO CRLF", "Host: HOST CRLF", "Name: value CRLF" per header.
func TestHeaderLimitIsExact(t *testing.T) {
	h, err := newHandler(keyringtest.NewFake(), keyservice.Options{Token: token}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"example.com", "rkms.internal:8080"} {
		for _, extra := range []int{0, 1} {
			req := httptest.NewRequest("GET", "/healthz", nil)
			req.Host = host
			req.Header.Set("X-Other", "abc")
			framed := len("GET /healthz HTTP/1.1\r\n") + len("Host: "+host+"\r\n") + len("X-Other: abc\r\n") + len("X-Pad: \r\n")
			req.Header.Set("X-Pad", strings.Repeat("p", MaxHeaderBytes-framed+extra))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			want := http.StatusOK
			if extra > 0 {
				want = http.StatusRequestHeaderFieldsTooLarge
			}
			if rec.Code != want {
				t.Errorf("host %q, headers of %d bytes: %d, want %d", host, MaxHeaderBytes+extra, rec.Code, want)
			}
		}
	}
}

// TestChunkedBodyLimit: a body of undeclared length (chunked) is held to the same limit as a
// declared one.
func TestChunkedBodyLimit(t *testing.T) {
	h, err := newHandler(keyringtest.NewFake(), keyservice.Options{Token: token}, Options{MaxBodyBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ size, want int }{{100, http.StatusOK}, {101, http.StatusRequestEntityTooLarge}} {
		req := httptest.NewRequest("GET", "/healthz", strings.NewReader(strings.Repeat("x", tc.size)))
		req.ContentLength = -1 // chunked
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("chunked body of %d bytes: %d, want %d", tc.size, rec.Code, tc.want)
		}
	}
}

// TestRetryAfterCoversTheWindow: a throttled address is told to come back once the window has
// ended, never sooner, and at most a second later.
func TestRetryAfterCoversTheWindow(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	h, err := newHandler(keyringtest.NewFake(), keyservice.Options{Token: token,
		Throttle: authlimit.New(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	do := func(tok string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/key?id=alice", nil)
		req.RemoteAddr = "192.0.2.7:1000"
		req.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	for range authlimit.Failures {
		do("wrong")
	}
	start := now
	for _, elapsed := range []time.Duration{0, authlimit.Window / 2, authlimit.Window - 1500*time.Millisecond} {
		mu.Lock()
		now = start.Add(elapsed)
		mu.Unlock()
		w := do(token)
		secs, err := strconv.Atoi(w.Header().Get("Retry-After"))
		left, after := authlimit.Window-elapsed, time.Duration(secs)*time.Second
		if w.Code != http.StatusTooManyRequests || err != nil || after < left || after > left+time.Second {
			t.Errorf("%v into the window: %d, Retry-After %q; want 429 and %v to %v", elapsed, w.Code, w.Header().Get("Retry-After"), left, left+time.Second)
		}
	}
}
