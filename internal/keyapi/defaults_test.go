package keyapi

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/rkms/rkms/internal/keyservice"
	"github.com/rkms/rkms/keyring"
	"github.com/rkms/rkms/keyring/keyringtest"
)

// deadlineKeys records how much time the context of each Get had left when the call began.
type deadlineKeys struct {
	*keyringtest.Fake
	mu   sync.Mutex
	left time.Duration // -1: no deadline
}

func (k *deadlineKeys) Get(ctx context.Context, id string) (keyring.DataKey, error) {
	left := time.Duration(-1)
	if d, ok := ctx.Deadline(); ok {
		left = time.Until(d)
	}
	k.mu.Lock()
	k.left = left
	k.mu.Unlock()
	return k.Fake.Get(ctx, id)
}

// TestTimeoutDefault: a zero or negative Timeout means 5 s per key operation, not an immediate
// deadline; a set one is kept.
func TestTimeoutDefault(t *testing.T) {
	for _, tc := range []struct{ timeout, want time.Duration }{
		{0, 5 * time.Second}, {-time.Second, 5 * time.Second}, {3 * time.Second, 3 * time.Second},
	} {
		k := &deadlineKeys{Fake: keyringtest.NewFake()}
		c := serve(t, k, keyservice.Options{Token: token, Timeout: tc.timeout})
		ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+token)
		if _, err := get("alice")(ctx, c); err != nil {
			t.Fatalf("Timeout %v: %v", tc.timeout, err)
		}
		k.mu.Lock()
		left := k.left
		k.mu.Unlock()
		if left < tc.want-time.Second || left > tc.want {
			t.Errorf("Timeout %v: the key operation had %v left, want about %v", tc.timeout, left, tc.want)
		}
	}
}
