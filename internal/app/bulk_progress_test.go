package app

import (
	"strings"
	"testing"
	"time"
)

func TestProgressLine(t *testing.T) {
	tests := []struct {
		records, read, size int64
		elapsed             time.Duration
		want                []string
		not                 []string
	}{
		{1000, 50e6, 100e6, 10 * time.Second, []string{"1000 records", "50.0 MB", "100 records/s", "5.0 MB/s", "50%", "ETA 10s"}, nil},
		{10, 1e6, 0, time.Second, []string{"10 records", "1.0 MB/s"}, []string{"ETA", "%"}}, // standard input: no size
		{0, 0, 100, 0, []string{"0 records"}, []string{"ETA"}},
	}
	for _, tc := range tests {
		got := progressLine("seal", tc.records, tc.read, tc.size, tc.elapsed)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("progressLine = %q, want %q in it", got, w)
			}
		}
		for _, w := range tc.not {
			if strings.Contains(got, w) {
				t.Errorf("progressLine = %q, want no %q", got, w)
			}
		}
	}
}

// TestProgressOnlyWhenAsked: stderr that is not a terminal gets no progress line (no carriage
// return) unless --progress; --no-progress wins on a terminal (isTerminal is false here anyway).
func TestProgressOnlyWhenAsked(t *testing.T) {
	cfg, _ := bulkConfig(t)
	in := strings.Repeat(canaryRecord("t1")+"\n", 200)
	_, _, stderr := cli(t, in, "seal", "--config", cfg, "--policy", "bulk", "--format", "ndjson")
	if strings.Contains(stderr, "\r") {
		t.Errorf("progress line on a non-terminal stderr: %q", stderr)
	}
	_, _, stderr = cli(t, in, "seal", "--config", cfg, "--policy", "bulk", "--format", "ndjson", "--progress")
	if !strings.Contains(stderr, "\r\033[K") {
		t.Errorf("--progress: no progress line: %q", stderr)
	}
	if strings.Contains(stderr, bulkCanary) {
		t.Errorf("progress holds the canary")
	}
}
