package extproc_test

import (
	"context"
	"sync"
	"testing"

	"google.golang.org/grpc"

	"github.com/rkms/rkms/internal/testing/load"
)

// TestConcurrentStreamsKeepTheirBodies runs many streams at once, each with its own tenant and
// body, and checks every stream gets back exactly its own body sealed (3 ciphertexts) and then
// opened: rewritten bodies live in pooled buffers, and a buffer reused too early would carry
// another stream's bytes (under another tenant's key, so it would fail to open).
func TestConcurrentStreamsKeepTheirBodies(t *testing.T) {
	rig, err := load.NewRig(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rig.Close() })
	const streams, rounds = 8, 25
	if err := rig.Warm(context.Background(), streams); err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(rig.Server.GRPCServerOptions()...)
	rig.Server.Register(g)
	client := serveLoopback(t, g)
	ctx := load.PolicyContext(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for s := range streams {
		body, err := load.Body(1024 + 37*s)
		if err != nil {
			t.Fatal(err)
		}
		x := load.NewExchange(body, streams, true)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				if err := x.Run(ctx, client, s); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := rig.Keyring.Stats(); st.CacheMisses > streams {
		t.Errorf("%d cache misses for %d warm keys", st.CacheMisses, streams)
	}
}
