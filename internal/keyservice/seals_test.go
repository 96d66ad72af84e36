package keyservice

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/rkms/rkms/internal/audit"
	"github.com/rkms/rkms/keyring"
	"github.com/rkms/rkms/keyring/keyringtest"
)

// countingKeys is the fake keyring with a seal count: block seals at most per call, limit
// after total.
type countingKeys struct {
	*keyringtest.Fake
	block, total, used int
	calls              int
}

func (c *countingKeys) SealBlock() int { return c.block }

func (c *countingKeys) ReserveSeals(_ context.Context, id string, v uint32, n int) error {
	c.calls++
	if n > c.block {
		return fmt.Errorf("more than a block: %w", keyring.ErrSealLimit)
	}
	if c.used+n > c.total {
		return fmt.Errorf("key %q version %d: %w", id, v, keyring.ErrSealLimit)
	}
	c.used += n
	return nil
}

// TestReserveSeals: POST /key/seals's service call needs the read right, caps the count at one
// block, says limit (not an error) for a version that may seal no more or is not current any
// longer, refuses a version above the current one without touching the seal count (it would
// start a budget that refuses the current version's seals), and is audited as reserve_seals.
func TestReserveSeals(t *testing.T) {
	const ok Class = -1
	tests := []struct {
		name     string
		id       string
		v        uint32
		n        int
		used     int // seals used before
		want     Class
		reserved int
		limit    bool
		audit    string
	}{
		{"capped at a block", "live", 3, 5000, 0, ok, 1000, false, "ok"},
		{"small", "live", 3, 10, 0, ok, 10, false, "ok"},
		{"limit", "live", 3, 1000, 1500, ok, 0, true, "ok"},
		{"old version", "live", 2, 10, 0, ok, 0, true, "ok"},
		{"version above current", "live", 4, 10, 0, InvalidArgument, 0, false, "invalid"},
		{"absent key", "nope", 1, 10, 0, NotFound, 0, false, "not_found"},
		{"zero count", "live", 3, 0, 0, InvalidArgument, 0, false, "invalid"},
		{"bad id", "a b", 1, 10, 0, InvalidArgument, 0, false, "invalid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			f := keyringtest.NewFake()
			f.Put("live", 3)
			keys := &countingKeys{Fake: f, block: 1000, total: 2000, used: tc.used}
			s, err := New(keys, Options{Token: token, Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
			if err != nil {
				t.Fatal(err)
			}
			ss, err := s.Authenticate(context.Background(), Caller{API: audit.APIHTTP, Authorization: "Bearer " + token}, audit.OpRead, "")
			if err != nil {
				t.Fatal(err)
			}
			res, err := ss.ReserveSeals(context.Background(), tc.id, tc.v, tc.n)
			switch {
			case tc.want == ok && (err != nil || res.Reserved != tc.reserved || res.Limit != tc.limit || !res.Counted):
				t.Fatalf("= %+v, %v; want %d reserved, limit %v", res, err, tc.reserved, tc.limit)
			case tc.want != ok && Classify(err).Class != tc.want:
				t.Fatalf("= %v, want class %v", err, tc.want)
			case tc.want != ok && keys.calls != 0:
				t.Fatalf("a refused reservation reached the seal count")
			}
			rec := lastAudit(&buf)
			if !strings.Contains(rec, `"op":"reserve_seals"`) || !strings.Contains(rec, `"result":"`+tc.audit+`"`) {
				t.Fatalf("audit record %s, want op reserve_seals result %s", rec, tc.audit)
			}
		})
	}
}
