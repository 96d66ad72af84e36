package limits

import "testing"

func TestBudget(t *testing.T) {
	for _, tc := range []struct {
		name    string
		limit   int64
		known   bool
		maxBody int
		want    int64
	}{
		{"half the container limit", 256 << 20, true, 1 << 20, 128 << 20},
		{"no limit known", 0, false, 1 << 20, DefaultMemoryBudget},
		{"at least one largest body", 16 << 20, true, 4 << 20, BodyCostFactor * 4 << 20},
		{"no limit, huge bodies", 0, false, 64 << 20, BodyCostFactor * 64 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Budget(tc.limit, tc.known, tc.maxBody); got != tc.want {
				t.Errorf("Budget = %d, want %d", got, tc.want)
			}
		})
	}
	if got := GoLimit(1000); got != 900 {
		t.Errorf("GoLimit(1000) = %d", got)
	}
}
