package extproc

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestLargeBodyTurns: at most largeBodies() large bodies are transformed at once; the next waits
// for a turn up to KeyTimeout, then is refused as overloaded (503, retry-after) with the reason
// large_body, and gets its turn as soon as one is given back.
func TestLargeBodyTurns(t *testing.T) {
	e := newTestEnv(t, Options{KeyTimeout: 30 * time.Millisecond})
	s := e.srv
	var releases []func()
	for range largeBodies() {
		r, err := s.takeLarge(context.Background(), phaseRequest)
		if err != nil {
			t.Fatalf("turn within the bound refused: %v", err)
		}
		releases = append(releases, r)
	}
	began := time.Now()
	_, err := s.takeLarge(context.Background(), phaseRequest)
	var pe *procError
	if !errors.As(err, &pe) || pe.kind != kindOverloaded || pe.reason != RefusedLargeBody || httpStatus(pe) != 503 || pe.retryAfter() != time.Second {
		t.Fatalf("turn over the bound: %v, want a 503 large_body refusal with retry-after", err)
	}
	if waited := time.Since(began); waited < 30*time.Millisecond {
		t.Errorf("refused after %v, before KeyTimeout", waited)
	}
	done := make(chan error, 1)
	go func() {
		r, err := s.takeLarge(context.Background(), phaseResponse)
		if err == nil {
			r()
		}
		done <- err
	}()
	releases[0]()
	if err := <-done; err != nil {
		t.Errorf("turn after one was given back: %v", err)
	}
	for _, r := range releases[1:] {
		r()
	}
	if n := len(s.large); n != 0 {
		t.Errorf("%d turns still taken", n)
	}
}
