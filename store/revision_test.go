package store_test

import (
	"errors"
	"math"
	"testing"

	"github.com/rkms/rkms/store"
)

func TestNextRevision(t *testing.T) {
	tests := []struct {
		rev, want int64
		invalid   bool
	}{
		{rev: 1, want: 2},
		{rev: 41, want: 42},
		{rev: store.InitialRevisionLimit - 1, want: store.InitialRevisionLimit},
		{rev: math.MaxInt64 - 1, want: math.MaxInt64},
		{rev: math.MaxInt64, invalid: true},
		{rev: 0, want: 1},   // stale or absent: the compare-and-swap rejects it, not NextRevision
		{rev: -5, want: -4}, // likewise
	}
	for _, tt := range tests {
		got, err := store.NextRevision(tt.rev)
		switch {
		case tt.invalid && !errors.Is(err, store.ErrInvalid):
			t.Errorf("NextRevision(%d) = %d, %v; want ErrInvalid", tt.rev, got, err)
		case !tt.invalid && (err != nil || got != tt.want):
			t.Errorf("NextRevision(%d) = %d, %v; want %d", tt.rev, got, err, tt.want)
		}
	}
}

// TestNewRevision checks the range and that draws do not repeat. With 62 random bits, a repeat
// among 10000 draws has probability about 2^-36: a failure means the source is not random.
func TestNewRevision(t *testing.T) {
	const n = 10000
	seen := make(map[int64]bool, n)
	var high bool // some draw above 2^61: the top bits are used
	for range n {
		r := store.NewRevision()
		if r < 1 || r >= store.InitialRevisionLimit {
			t.Fatalf("NewRevision() = %d, want one in [1, 2^62)", r)
		}
		if seen[r] {
			t.Fatalf("NewRevision() repeated %d", r)
		}
		seen[r] = true
		high = high || r >= 1<<61
	}
	if !high {
		t.Fatalf("no draw of %d reached 2^61: the range is not covered", n)
	}
}
