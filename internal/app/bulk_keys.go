package app

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/extproc"
)

// maxMemoKeys bounds each map of memoKeys: past it the map is emptied and refilled, so a run
// over millions of distinct key ids holds a bounded number of keys.
const maxMemoKeys = 4096

// memoKeys remembers, for one command run, the keys a source returned: one lookup per key id
// (Current, Lookup) and per key version (Version), not one per record, whatever the source
// (the keyring, whose cache is already cheap, or a --server admin API, where each lookup is an
// HTTP call). A run therefore seals with the version current when it first sealed under a key
// id, even if the key rotates meanwhile (those ciphertexts open as any older version's do),
// until that version reaches its seal limit (ReserveSeals).
// Errors are not remembered. Each lookup is bounded by timeout when it is not 0.
type memoKeys struct {
	keys    extproc.Keys
	timeout time.Duration

	mu       sync.Mutex
	current  map[string]envelope.Key
	lookup   map[string]envelope.Key
	versions map[keyVersion]envelope.Key
}

type keyVersion struct {
	id string
	v  uint32
}

var (
	_ extproc.Keys        = (*memoKeys)(nil)
	_ extproc.SealCounter = (*memoKeys)(nil)
)

// ReserveSeals passes the count to the source when it counts seals (the keyring's
// keyring.rotation.max_seals, or a --server's through its admin API), so that a bulk run's
// seals count as rkms serve's do. When the version may seal no more, the remembered current key
// of id is forgotten, so that the transform's next Current reads the version that replaced it.
func (m *memoKeys) ReserveSeals(ctx context.Context, id string, v uint32, n int) error {
	sc, ok := m.keys.(extproc.SealCounter)
	if !ok {
		return nil
	}
	err := sc.ReserveSeals(ctx, id, v, n)
	if errors.Is(err, extproc.ErrKeySealLimit) {
		m.mu.Lock()
		for _, cache := range []map[string]envelope.Key{m.current, m.lookup} {
			if k, ok := cache[id]; ok && k.Version == v {
				delete(cache, id)
			}
		}
		m.mu.Unlock()
	}
	return err
}

func newMemoKeys(keys extproc.Keys, timeout time.Duration) *memoKeys {
	return &memoKeys{keys: keys, timeout: timeout, current: map[string]envelope.Key{},
		lookup: map[string]envelope.Key{}, versions: map[keyVersion]envelope.Key{}}
}

func (m *memoKeys) Current(ctx context.Context, id string) (envelope.Key, error) {
	return memo(ctx, m, m.current, id, func(ctx context.Context) (envelope.Key, error) { return m.keys.Current(ctx, id) })
}

func (m *memoKeys) Lookup(ctx context.Context, id string) (envelope.Key, error) {
	return memo(ctx, m, m.lookup, id, func(ctx context.Context) (envelope.Key, error) { return m.keys.Lookup(ctx, id) })
}

func (m *memoKeys) Version(ctx context.Context, id string, v uint32) (envelope.Key, error) {
	return memo(ctx, m, m.versions, keyVersion{id, v}, func(ctx context.Context) (envelope.Key, error) { return m.keys.Version(ctx, id, v) })
}

// memo returns the key remembered under k in cache, or gets and remembers it.
func memo[K comparable](ctx context.Context, m *memoKeys, cache map[K]envelope.Key, k K, get func(context.Context) (envelope.Key, error)) (envelope.Key, error) {
	m.mu.Lock()
	key, ok := cache[k]
	m.mu.Unlock()
	if ok {
		return key, nil
	}
	if m.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, m.timeout)
		defer cancel()
	}
	key, err := get(ctx)
	if err != nil {
		return envelope.Key{}, err
	}
	m.mu.Lock()
	if len(cache) >= maxMemoKeys {
		clear(cache)
	}
	cache[k] = key
	m.mu.Unlock()
	return key, nil
}
