package authlimit

import (
	"fmt"
	"testing"
	"time"
)

// TestThrottleBounded: the throttle tracks at most maxTracked addresses, and a full table does
// not release an address that is being throttled.
func TestThrottleBounded(t *testing.T) {
	now := time.Unix(0, 0)
	th := New(func() time.Time { return now })
	for range Failures {
		th.Fail("198.51.100.7:1")
	}
	for i := range maxTracked + 100 {
		th.Fail(fmt.Sprintf("10.%d.%d.%d:1", i>>16&255, i>>8&255, i&255))
	}
	if len(th.addrs) > maxTracked {
		t.Fatalf("%d addresses tracked, bound %d", len(th.addrs), maxTracked)
	}
	if blocked, _ := th.Blocked("198.51.100.7:2"); !blocked {
		t.Fatal("a flood of other addresses released a throttled one")
	}
}
