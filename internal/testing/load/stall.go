package load

import (
	"context"
	"sync"
	"time"
)

// stallMeter measures how late the load client's process wakes from a 1 ms sleep, all through
// the run: the machine's scheduling stalls, which every process on it suffers (on a shared
// 2-core machine at load 6-12, wake-ups 20-170 ms late were seen). It puts a measured floor
// under the p99 figures: a p99 difference smaller than the stalls of the same run is the
// machine's, not a server's. It costs one goroutine waking 1,000 times a second.
type stallMeter struct {
	mu     sync.Mutex
	wakes  int
	stalls []time.Duration // lateness of each wake-up more than stallLimit late
	done   chan struct{}
}

// stallLimit is the lateness counted as a stall.
const stallLimit = 20 * time.Millisecond

func startStallMeter(ctx context.Context) *stallMeter {
	m := &stallMeter{done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			t0 := time.Now()
			time.Sleep(time.Millisecond)
			late := time.Since(t0) - time.Millisecond
			m.mu.Lock()
			m.wakes++
			if late > stallLimit {
				m.stalls = append(m.stalls, late)
			}
			m.mu.Unlock()
		}
	}()
	return m
}

// Stalls is what a stall meter saw.
type Stalls struct {
	Wakes   int           // 1 ms sleeps measured
	Count   int           // wake-ups more than stallLimit late
	Longest time.Duration // the latest wake-up
	Total   time.Duration // the lateness of the stalls, added up
}

// result returns what the meter saw (wait for done after cancelling its context).
func (m *stallMeter) result() Stalls {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := Stalls{Wakes: m.wakes, Count: len(m.stalls)}
	for _, d := range m.stalls {
		s.Longest = max(s.Longest, d)
		s.Total += d
	}
	return s
}
