package extproc

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"time"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/secret"
)

// fakeKeys is an in-memory Keys: random data keys per id, versions from 1, and switches that make
// it unavailable or slow.
type fakeKeys struct {
	mu          sync.Mutex
	keys        map[string][]envelope.Key // id -> versions (index v-1)
	unavailable bool
	delay       time.Duration
	calls       int
	current     int           // Current calls
	limit       time.Duration // > 0: creations refused with a CreateLimitedError
	made        map[string]bool
	minVersion  map[string]uint32 // versions below are retired (ErrKeyRetired)
}

var _ Keys = (*fakeKeys)(nil)

func newFakeKeys() *fakeKeys {
	return &fakeKeys{keys: map[string][]envelope.Key{}, made: map[string]bool{}}
}

func (k *fakeKeys) wait(ctx context.Context) error {
	k.mu.Lock()
	k.calls++
	d, down := k.delay, k.unavailable
	k.mu.Unlock()
	if down {
		return fmt.Errorf("fake keys: %w", ErrKeyUnavailable)
	}
	if d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
		// When both are ready (the goroutine woke late on a loaded machine) select picks one at
		// random: a caller whose deadline has passed must always see the timeout, or a test of
		// the key timeout passes or fails by chance.
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("fake keys: %w: %w", ErrKeyUnavailable, err)
		}
	}
	return nil
}

func (k *fakeKeys) Current(ctx context.Context, id string) (envelope.Key, error) {
	if err := envelope.ValidateKeyID(id); err != nil {
		return envelope.Key{}, err
	}
	if err := k.wait(ctx); err != nil {
		return envelope.Key{}, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.current++
	if len(k.keys[id]) == 0 {
		if k.limit > 0 {
			return envelope.Key{}, fmt.Errorf("fake keys: create %q: %w", id, &CreateLimitedError{RetryAfter: k.limit})
		}
		k.keys[id] = append(k.keys[id], newDataKey(id, 1))
		k.made[id] = true
	}
	vs := k.keys[id]
	return vs[len(vs)-1], nil
}

func (k *fakeKeys) Lookup(ctx context.Context, id string) (envelope.Key, error) {
	if err := envelope.ValidateKeyID(id); err != nil {
		return envelope.Key{}, err
	}
	if err := k.wait(ctx); err != nil {
		return envelope.Key{}, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	vs := k.keys[id]
	if len(vs) == 0 {
		return envelope.Key{}, fmt.Errorf("fake keys: %q: %w", id, ErrKeyUnknown)
	}
	return vs[len(vs)-1], nil
}

// limitCreation makes Current refuse to create keys, asking to retry after d (0: no limit).
func (k *fakeKeys) limitCreation(d time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.limit = d
}

// created reports whether Current created id's key.
func (k *fakeKeys) created(id string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.made[id]
}

func (k *fakeKeys) currentCalls() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.current
}

func (k *fakeKeys) Version(ctx context.Context, id string, v uint32) (envelope.Key, error) {
	if err := k.wait(ctx); err != nil {
		return envelope.Key{}, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	vs := k.keys[id]
	if v == 0 || int(v) > len(vs) {
		return envelope.Key{}, fmt.Errorf("fake keys: %q version %d: %w", id, v, ErrKeyNotFound)
	}
	if v < k.minVersion[id] {
		return envelope.Key{}, fmt.Errorf("fake keys: %q version %d: %w", id, v, ErrKeyRetired)
	}
	return vs[v-1], nil
}

func (k *fakeKeys) rotate(id string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.keys[id] = append(k.keys[id], newDataKey(id, uint32(len(k.keys[id])+1)))
}

// retire makes the versions of id below v refuse to open.
func (k *fakeKeys) retire(id string, v uint32) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.minVersion == nil {
		k.minVersion = map[string]uint32{}
	}
	k.minVersion[id] = v
}

func (k *fakeKeys) remove(id string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.keys, id)
}

func (k *fakeKeys) set(unavailable bool, delay time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.unavailable, k.delay = unavailable, delay
}

func newDataKey(id string, v uint32) envelope.Key {
	b := make([]byte, envelope.DataKeyLen)
	_, _ = rand.Read(b)
	return envelope.Key{ID: id, Version: v, Secret: secret.New(b)}
}
