package keyring

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"

	"github.com/rkms/rkms/secret"
	"github.com/rkms/rkms/store"
)

// Defaults applied by [New] to zero [Options] fields.
const (
	DefaultCacheTTL         = 5 * time.Minute
	DefaultCacheMaxKeys     = 100000
	DefaultCacheMaxDerived  = 10000
	DefaultBreakerThreshold = 3
	DefaultBreakerCooldown  = 10 * time.Second
	DefaultRepairInterval   = time.Minute
	DefaultCallTimeout      = 3 * time.Second
	DefaultCreateRate       = 10
	DefaultCreateBurst      = 20
	DefaultNegativeTTL      = 5 * time.Second
	DefaultNegativeMaxKeys  = 10000
	// DefaultRetireGrace is how long a retired version keeps its wrapped copies (Options.RetireGrace).
	DefaultRetireGrace = 7 * 24 * time.Hour
	// DefaultMaintenanceInterval is how often every key's lifecycle is checked
	// (Options.MaintenanceInterval).
	DefaultMaintenanceInterval = 24 * time.Hour
	// DefaultMaintenanceRate is how many keys per second the periodic pass reads at most
	// (Options.MaintenanceRate): a million keys take about 5.6 hours.
	DefaultMaintenanceRate = 50
)

// wipeGrace is how long an evicted key stays usable by callers that received it just before the
// eviction.
const wipeGrace = 5 * time.Second

// maxCASAttempts bounds the re-read-and-retry loops around store.Update.
const maxCASAttempts = 8

// Options tune a [Keyring]. Zero values take the defaults.
type Options struct {
	// MinRegions is how many wrapped copies a new key (or version) needs before it is stored.
	// Default: a majority of the configured regions ([DefaultMinRegions]). Must be 1..n
	// ([CheckMinRegions]).
	MinRegions int
	// CacheTTL bounds how long a plaintext data key stays cached, counted from when it was
	// fetched (hits do not extend it). Default 5m; negative disables the cache.
	CacheTTL time.Duration
	// MaxStale is how long past CacheTTL a cached key may still be served when its refresh
	// fails because the key service is unavailable (every region holding a copy, or the store,
	// unreachable): stale-if-error. An entry past its TTL is refetched on its next use; if that
	// fails with ErrUnavailable, the stale key is served, and refreshed again at most once a
	// second until a refresh succeeds. It is never served for a record that no longer holds the
	// copy it was opened from (deleted, or deleted and re-created). Zero (the default) disables.
	MaxStale time.Duration
	// CacheMaxKeys bounds the number of cached key ids (least recently used evicted first).
	// Default 100000; negative disables the cache.
	CacheMaxKeys int
	// CacheMaxDerived bounds how many cached keys hold state derived from them at once
	// ([secret.Key.Derive]: envelope keeps an AES primitive per key and mode, about 1 KiB with
	// its expanded key schedules and tables, 30 times the data key). Beyond it the least recently
	// used (CLOCK, [secret.Limiter]) drop that state and derive it again on their next use, which
	// costs envelope about 10 µs. Default 10000; negative: no bound.
	CacheMaxDerived int
	// BreakerThreshold is the number of consecutive unavailability failures that open a
	// region's circuit breaker. Default 3.
	BreakerThreshold int
	// BreakerCooldown is how long an open breaker waits before one trial call. Default 10s.
	BreakerCooldown time.Duration
	// RepairInterval is how often records missing a region's copy are retried, besides the
	// retry triggered when a breaker closes. Default 1m.
	RepairInterval time.Duration
	// CallTimeout is the deadline of every single KMS or store call made by the keyring.
	// Default 3s.
	CallTimeout time.Duration
	// CreateRate is how many new keys per second this keyring may create (a token bucket, see
	// CreateBurst); a Get that would create one more fails with a *CreateLimitedError. Opening
	// existing keys is never limited. Default 10; negative: unlimited.
	CreateRate float64
	// CreateBurst is the token bucket's size: how many keys may be created at once after a
	// quiet period. Default 20; must not be negative.
	CreateBurst int
	// NegativeTTL is how long a Lookup that found no key is remembered, so that repeated
	// Lookups of unknown ids do not read the store. Creating, rotating or deleting the key on
	// this keyring forgets it at once; a key created by another replica is seen here after at
	// most NegativeTTL. Default 5s; negative disables.
	NegativeTTL time.Duration
	// NegativeMaxKeys bounds the ids remembered as absent (least recently used evicted first).
	// Default 10000; negative disables.
	NegativeMaxKeys int
	// MaxAge rotates a key's current version automatically when it is this old, less a lead:
	// the longer of the cache window (CacheTTL plus one sweep interval plus MaxStale; no replica
	// seals with it past MaxAge) and MaxAge/10 (a failed rotation is retried that long before
	// seals stop) — [Keyring.RotationDueAt]. The next Get after that rotates it (one replica
	// wins), and so does the maintenance pass. Zero (the default) disables; it must be at least twice the cache window.
	MaxAge time.Duration
	// MaxSeals rotates a key's current version before all replicas together have sealed this
	// many values with it (see [Keyring.ReserveSeals]: seals are reserved in blocks of
	// MaxSeals/1024, clamped to 1,000..1,000,000). Zero (the default) disables.
	MaxSeals uint64
	// RetireGrace is how long a retired version ([Keyring.SetMinDecryptVersion]) keeps its
	// wrapped copies before the maintenance deletes them for good. Default 7 days; negative:
	// copies are never deleted automatically.
	RetireGrace time.Duration
	// MaintenanceInterval is how often the background loop checks every key in the store for a
	// due rotation (MaxAge) or destruction (RetireGrace); keys read in between are checked when
	// read. Default 24h; negative disables the periodic pass. Each replica starts its first pass
	// at a random moment within the first interval, so that replicas started together do not
	// read the store together.
	MaintenanceInterval time.Duration
	// MaintenanceRate bounds the periodic pass to this many keys (store reads) per second.
	// Default 50; negative: unpaced.
	MaintenanceRate float64
	// Mode is how new data keys are wrapped: ModeDirect (default) or ModeHierarchical. Reads
	// do not depend on it: every record says how it is wrapped, so switching needs no migration.
	Mode string
	// Hierarchical tunes hierarchical mode (branch keys, their rotation, the re-wrap pass).
	Hierarchical Hierarchical
	// WrappedTTL is how long a record whose current version is branch-wrapped stays cached
	// (wrapped, useless without its branch key), so that a plaintext cache miss costs no store
	// read. It is also how long another replica's rotation or deletion of such a key may go
	// unseen here. Default 1h; negative disables.
	WrappedTTL time.Duration
	// WrappedMaxKeys bounds the wrapped-record cache. Default 100000; negative disables.
	WrappedMaxKeys int
	// Tenants gives key ids their own KMS regions (bring your own key), see [TenantKeys].
	Tenants []TenantKeys
	// Logger receives operational events (never key material). Default: discard.
	Logger *slog.Logger
	// Now is the clock for cache expiry and breaker cooldowns. Default time.Now.
	Now func() time.Time
}

// Keyring hands out plaintext data keys per key id: cached, unwrapped from a multi-region store
// record, created on first use. It is safe for concurrent use. See the package doc.
type Keyring struct {
	st         Store
	h          *health
	cache      *cache
	opts       Options
	minRegions int
	log        *slog.Logger
	sf         singleflight.Group
	derived    *secret.Limiter // nil: no bound (Options.CacheMaxDerived < 0)
	creates    *rate.Limiter   // nil: unlimited (Options.CreateRate < 0)
	neg        *negCache
	wrapped    *wrappedCache
	shared     *regionSet  // the configured regions
	tenants    []tenantSet // tenants with their own regions (Options.Tenants)
	background bool        // the background loops run (New, not NewManual)

	pendingMu sync.Mutex
	pending   map[string]struct{}
	kick      chan struct{}

	closed    atomic.Bool
	closeOnce sync.Once
	stop      context.CancelFunc
	bg        context.Context // ends at Close: background work not tied to a caller
	loops     sync.WaitGroup
	budgets   budgets

	storeReads atomic.Uint64
	created    atomic.Uint64
	repaired   atomic.Uint64
	staleHits  atomic.Uint64
	limited    atomic.Uint64

	rotations        [3]atomic.Uint64 // by reason: age, seals, admin
	retired          atomic.Uint64
	destroyed        atomic.Uint64
	refusedRetired   atomic.Uint64
	sealReservations atomic.Uint64

	// Hierarchical mode.
	localWraps    atomic.Uint64
	localUnwraps  atomic.Uint64
	rewrapped     atomic.Uint64
	rewrapScanned atomic.Uint64
	rewrapPasses  atomic.Uint64
	rewrapDone    atomic.Uint64
	branchRetired atomic.Uint64
	rewrapRunning atomic.Bool
}

// countRotation counts a rotation by reason.
func (k *Keyring) countRotation(reason string) {
	switch reason {
	case ReasonAge:
		k.rotations[0].Add(1)
	case ReasonSeals:
		k.rotations[1].Add(1)
	default:
		k.rotations[2].Add(1)
	}
}

// New returns a keyring over st and regions (in order of preference) and starts its background
// loop (cache expiry, breaker probes, repair). Call Close to stop it.
func New(st Store, regions []Region, opts Options) (*Keyring, error) {
	return newKeyring(st, regions, opts, true)
}

func newKeyring(st Store, regions []Region, opts Options, background bool) (*Keyring, error) {
	if st == nil {
		return nil, errors.New("new keyring: nil store")
	}
	if len(regions) == 0 {
		return nil, errors.New("new keyring: no region configured")
	}
	opts, err := withDefaults(opts, len(regions))
	if err != nil {
		return nil, fmt.Errorf("new keyring: %w", err)
	}
	k := &Keyring{
		st:         st,
		opts:       opts,
		minRegions: opts.MinRegions,
		log:        opts.Logger,
		pending:    make(map[string]struct{}),
		kick:       make(chan struct{}, 1),
	}
	k.h = &health{
		threshold: opts.BreakerThreshold,
		cooldown:  opts.BreakerCooldown,
		timeout:   opts.CallTimeout,
		now:       opts.Now,
		log:       opts.Logger,
		onClose:   k.triggerRepair,
	}
	seen := make(map[string]bool, len(regions))
	k.shared = &regionSet{minRegions: opts.MinRegions}
	for i, r := range regions {
		rs, err := k.register(r, seen)
		if err != nil {
			return nil, fmt.Errorf("new keyring: region %d: %w", i, err)
		}
		k.shared.regions = append(k.shared.regions, rs)
	}
	if err := k.addTenants(opts.Tenants, seen); err != nil {
		return nil, fmt.Errorf("new keyring: %w", err)
	}
	k.background = background
	k.wrapped = newWrappedCache(opts.WrappedMaxKeys, opts.WrappedTTL, opts.Now)
	if opts.CacheMaxDerived > 0 {
		k.derived = secret.NewLimiter(opts.CacheMaxDerived)
	}
	k.cache = newCache(opts.CacheMaxKeys, opts.CacheTTL, opts.MaxStale, opts.Now, wipeGrace)
	if opts.CreateRate >= 0 {
		k.creates = rate.NewLimiter(rate.Limit(opts.CreateRate), opts.CreateBurst)
	}
	k.neg = newNegCache(opts.NegativeMaxKeys, opts.NegativeTTL, opts.Now)
	k.budgets = newBudgets(max(opts.CacheMaxKeys, DefaultNegativeMaxKeys), k.cache.canonical)
	if err := k.checkRotation(); err != nil {
		return nil, fmt.Errorf("new keyring: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	k.stop, k.bg = cancel, ctx
	if background {
		k.loops.Go(func() { k.run(ctx, loopInterval(opts)) })
		if opts.MaintenanceInterval > 0 {
			k.loops.Go(func() { k.maintainLoop(ctx, opts.MaintenanceInterval) })
		}
		if !k.cache.disabled {
			k.loops.Go(func() { every(ctx, sweepInterval(opts.CacheTTL), k.cache.sweep) })
		}
	}
	return k, nil
}

// DefaultMinRegions is the MinRegions of n regions when Options.MinRegions is 0: a majority.
func DefaultMinRegions(n int) int { return n/2 + 1 }

// CheckMinRegions reports whether m is a valid Options.MinRegions for n regions: 1..n, or 0 for
// [DefaultMinRegions]. [New] and the config loader both use it.
func CheckMinRegions(m, n int) error {
	if m < 0 || m > n {
		return fmt.Errorf("must be between 1 and the number of regions (%d), or 0 for a majority (got %d)", n, m)
	}
	return nil
}

// orDefault sets *v to d when *v is zero.
func orDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

func withDefaults(o Options, n int) (Options, error) {
	if err := CheckMinRegions(o.MinRegions, n); err != nil {
		return o, fmt.Errorf("min regions: %w", err)
	}
	orDefault(&o.MinRegions, DefaultMinRegions(n))
	orDefault(&o.CacheTTL, DefaultCacheTTL)
	orDefault(&o.CacheMaxKeys, DefaultCacheMaxKeys)
	orDefault(&o.CacheMaxDerived, DefaultCacheMaxDerived)
	orDefault(&o.BreakerThreshold, DefaultBreakerThreshold)
	orDefault(&o.BreakerCooldown, DefaultBreakerCooldown)
	orDefault(&o.RepairInterval, DefaultRepairInterval)
	orDefault(&o.CallTimeout, DefaultCallTimeout)
	orDefault(&o.CreateRate, DefaultCreateRate)
	orDefault(&o.CreateBurst, DefaultCreateBurst)
	orDefault(&o.NegativeTTL, DefaultNegativeTTL)
	orDefault(&o.NegativeMaxKeys, DefaultNegativeMaxKeys)
	orDefault(&o.RetireGrace, DefaultRetireGrace)
	orDefault(&o.MaintenanceInterval, DefaultMaintenanceInterval)
	orDefault(&o.MaintenanceRate, DefaultMaintenanceRate)
	if o.CreateBurst < 0 {
		return o, errors.New("create burst must not be negative")
	}
	if o.BreakerThreshold < 0 || o.BreakerCooldown < 0 || o.RepairInterval < 0 || o.CallTimeout < 0 || o.MaxStale < 0 {
		return o, errors.New("breaker threshold, breaker cooldown, repair interval, call timeout and max stale must not be negative")
	}
	if err := hierDefaults(&o); err != nil {
		return o, err
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, nil
}

// Get returns the current version of id's data key, creating the key on first use. Errors wrap
// ErrInvalidID, ErrUnavailable (with a *RegionErrors when regions failed), ErrClosed, or
// ErrCreateLimited (a *CreateLimitedError) when the key has to be created and
// Options.CreateRate is exhausted.
func (k *Keyring) Get(ctx context.Context, id string) (DataKey, error) {
	if k.closed.Load() {
		return DataKey{}, ErrClosed
	}
	if dk, ok := k.cache.current(id); ok {
		return dk, nil
	}
	if err := ValidateID(id); err != nil {
		return DataKey{}, err
	}
	if dk, ok := k.cache.staleKey(id, 0, true, nil, true); ok {
		k.staleHits.Add(1)
		return dk, nil
	}
	return k.flight(ctx, id, id, k.loadCurrent)
}

// GetVersion returns version v of id's data key. It never creates: errors wrap ErrNotFound when
// the key or the version does not exist, otherwise as Get.
func (k *Keyring) GetVersion(ctx context.Context, id string, v uint32) (DataKey, error) {
	if k.closed.Load() {
		return DataKey{}, ErrClosed
	}
	if dk, ok := k.cache.version(id, v); ok {
		return dk, nil
	}
	if err := ValidateID(id); err != nil {
		return DataKey{}, err
	}
	if v == 0 {
		return DataKey{}, fmt.Errorf("key %q version 0: %w", id, ErrNotFound)
	}
	if dk, ok := k.cache.staleKey(id, v, false, nil, true); ok {
		k.staleHits.Add(1)
		return dk, nil
	}
	// NUL never occurs in a valid id, so this cannot collide with Get's flight key.
	fkey := id + "\x00" + strconv.FormatUint(uint64(v), 10)
	return k.flight(ctx, fkey, id, func(ctx context.Context, id string) (DataKey, error) {
		gen := k.cache.generation()
		rec, cached, err := k.readRecord(ctx, id)
		if err != nil {
			return k.orStale(id, v, false, nil, err)
		}
		dk, err := k.open(ctx, id, rec, v, gen)
		if err != nil && cached {
			// The cached record may be out of date (re-wrapped, rotated, retired elsewhere):
			// read the store before failing.
			k.wrapped.remove(id)
			return k.loadVersionFresh(ctx, id, v)
		}
		if err != nil {
			return k.orStale(id, v, false, rec, err)
		}
		return dk, nil
	})
}

// flight runs load once for all concurrent callers with the same key. load runs detached from
// any one caller's cancellation (each store and KMS call still has its deadline); each caller
// stops waiting when its own ctx ends.
func (k *Keyring) flight(ctx context.Context, fkey, id string, load func(context.Context, string) (DataKey, error)) (DataKey, error) {
	lctx := context.WithoutCancel(ctx)
	ch := k.sf.DoChan(fkey, func() (any, error) { return load(lctx, id) })
	select {
	case r := <-ch:
		if r.Err != nil {
			return DataKey{}, r.Err
		}
		return r.Val.(DataKey), nil
	case <-ctx.Done():
		return DataKey{}, fmt.Errorf("wait for key %q: %w: %w", id, ErrUnavailable, ctx.Err())
	}
}

// loadCurrent reads id's record and opens its current version, or creates the key.
func (k *Keyring) loadCurrent(ctx context.Context, id string) (DataKey, error) {
	return k.load(ctx, id, true)
}

// loadVersionFresh opens version v of id from a store read (no wrapped-record cache).
func (k *Keyring) loadVersionFresh(ctx context.Context, id string, v uint32) (DataKey, error) {
	gen := k.cache.generation()
	rec, err := k.storeGet(ctx, id)
	if err != nil {
		return k.orStale(id, v, false, nil, err)
	}
	dk, err := k.open(ctx, id, rec, v, gen)
	if err != nil {
		return k.orStale(id, v, false, rec, err)
	}
	return dk, nil
}

func (k *Keyring) load(ctx context.Context, id string, create bool) (DataKey, error) {
	gen, ngen := k.cache.generation(), k.neg.generation()
	if rec, ok := k.wrapped.get(id); ok {
		if dk, err := k.loadFrom(ctx, id, rec, gen); err == nil {
			return dk, nil
		}
		// Out of date, perhaps (rotated, re-wrapped or retired elsewhere): read the store.
		k.wrapped.remove(id)
	}
	wgen := k.wrapped.generation()
	rec, err := k.storeGet(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		if create {
			return k.create(ctx, id, gen)
		}
		k.neg.put(ngen, id)
		return DataKey{}, err
	}
	if err != nil {
		return k.orStale(id, 0, true, nil, err)
	}
	k.wrapped.put(wgen, rec)
	dk, err := k.loadFrom(ctx, id, rec, gen)
	if err != nil {
		return k.orStale(id, 0, true, rec, err)
	}
	return dk, nil
}

// loadFrom opens rec's current version, rotating it first when it is due.
func (k *Keyring) loadFrom(ctx context.Context, id string, rec *store.Record, gen uint64) (DataKey, error) {
	if reason := k.rotationDue(rec); reason != "" {
		if dk, done, err := k.loadDue(ctx, id, rec, reason, gen); done {
			return dk, err
		}
	}
	return k.open(ctx, id, rec, rec.Current, gen)
}

// orStale is stale-if-error: when err says the key service is unavailable, it returns the
// cached key of id (version v, or the current one) even past its TTL, within MaxStale. rec is
// the record the store returned, if it answered: the cached key must still be in it.
func (k *Keyring) orStale(id string, v uint32, current bool, rec *store.Record, err error) (DataKey, error) {
	if !errors.Is(err, ErrUnavailable) {
		return DataKey{}, err
	}
	dk, ok := k.cache.staleKey(id, v, current, rec, false)
	if !ok {
		return DataKey{}, err
	}
	k.staleHits.Add(1)
	k.log.Warn("key refresh failed; serving the cached key past its ttl", "key_id", id, "version", dk.Version, "err", err)
	return dk, nil
}

// open unwraps version v of rec and caches it. A retired version is refused
// (ErrVersionRetired). A current version due for rotation is cached as a version, never as the
// entry's current one, so that the next Get reads the record again and rotates it.
func (k *Keyring) open(ctx context.Context, id string, rec *store.Record, v uint32, gen uint64) (DataKey, error) {
	k.noticeMissing(rec)
	k.noticeLifecycle(rec)
	ver, ok := rec.Version(v)
	if !ok {
		if v == rec.Current {
			return DataKey{}, fmt.Errorf("key %q: record names current version %d but does not hold it", id, v)
		}
		return DataKey{}, fmt.Errorf("key %q version %d: %w", id, v, ErrNotFound)
	}
	if err := k.retiredErr(id, rec, ver); err != nil {
		return DataKey{}, err
	}
	key, src, err := k.unwrap(ctx, id, ver)
	if err != nil {
		return DataKey{}, err
	}
	if k.needsRewrap(rec) {
		k.enqueue(id) // lazily: the next repair pass re-wraps it (compare-and-swap)
	}
	cur := rec.Current
	if k.rotationDue(rec) != "" {
		cur = 0
	}
	key = k.cache.put(gen, id, v, cur, rec.MinDecryptVersion, key, k.origin(ver, src))
	return DataKey{ID: id, Version: v, Secret: key}, nil
}

// origin is the cache's note of which copy of ver a key came from (only kept for MaxStale).
func (k *Keyring) origin(ver store.Version, region string) origin {
	if k.opts.MaxStale <= 0 {
		return origin{}
	}
	if region == "" { // a new version: any copy will do; take the first by name
		for name := range ver.Wrapped {
			if region == "" || name < region {
				region = name
			}
		}
	}
	return originOf(ver, region)
}

// Delete turns id's record into a tombstone ([store.Record.Deleted], no versions): the data key
// is gone (crypto-shredding: without the wrapped copies it cannot be recovered), and the id is
// remembered as deleted, so that Get and Lookup fail with ErrDeleted instead of creating a new
// key; only Create with recreate brings it back. It evicts the key from this keyring's cache;
// other replicas may serve it from their caches until their CacheTTL passes. Errors wrap
// ErrNotFound (no record), ErrDeleted (already deleted), ErrInvalidID or ErrUnavailable.
func (k *Keyring) Delete(ctx context.Context, id string) error {
	if k.closed.Load() {
		return ErrClosed
	}
	if err := ValidateID(id); err != nil {
		return err
	}
	err := k.tombstone(ctx, id)
	k.cache.remove(id)
	k.neg.remove(id)
	k.pendingMu.Lock()
	delete(k.pending, id)
	k.pendingMu.Unlock()
	if err != nil {
		return fmt.Errorf("delete key %q: %w", id, err)
	}
	k.log.Info("key deleted", "key_id", id)
	return nil
}

// tombstone replaces id's live record with a tombstone, compare-and-swap on its revision.
func (k *Keyring) tombstone(ctx context.Context, id string) error {
	for range maxCASAttempts {
		rec, err := k.storeRead(ctx, id)
		if err != nil {
			return err
		}
		if rec.IsTombstone() {
			return ErrDeleted
		}
		tomb := &store.Record{ID: id, Revision: rec.Revision, Deleted: k.opts.Now().UTC()}
		err = k.storeWrite(ctx, tomb, false)
		if !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("record kept changing: %w", ErrUnavailable)
}

// Ready reports whether the keyring can serve: the store answers a ping and at least MinRegions
// regions have a closed breaker. Errors wrap ErrUnavailable.
func (k *Keyring) Ready(ctx context.Context) error {
	if k.closed.Load() {
		return ErrClosed
	}
	pctx, cancel := context.WithTimeout(ctx, k.opts.CallTimeout)
	err := k.st.Ping(pctx)
	cancel()
	if err != nil {
		return fmt.Errorf("key store not ready: %w: %w", ErrUnavailable, err)
	}
	if n := countUsable(k.shared.regions); n < k.minRegions {
		return fmt.Errorf("%d of %d kms regions healthy, %d required: %w", n, len(k.shared.regions), k.minRegions, ErrUnavailable)
	}
	return nil
}

// Close stops the background loops and wipes every cached key. Later calls fail with ErrClosed.
// It does not close the store or the regions.
func (k *Keyring) Close() error {
	k.closeOnce.Do(func() {
		k.closed.Store(true)
		k.stop()
		k.loops.Wait()
		k.cache.clear()
	})
	return nil
}

// storeGet reads id's live record with the call deadline: a tombstone is an error wrapping
// ErrDeleted (and not store.ErrNotFound, so that no caller takes it for an absent id).
func (k *Keyring) storeGet(ctx context.Context, id string) (*store.Record, error) {
	rec, err := k.storeRead(ctx, id)
	if err != nil {
		return nil, err
	}
	if rec.IsTombstone() {
		return nil, fmt.Errorf("read key record %q: %w", id, ErrDeleted)
	}
	return rec, nil
}

// storeRead reads id's record, tombstone or not, with the call deadline.
func (k *Keyring) storeRead(ctx context.Context, id string) (*store.Record, error) {
	k.storeReads.Add(1)
	ctx, cancel := context.WithTimeout(ctx, k.opts.CallTimeout)
	defer cancel()
	rec, err := k.st.Get(ctx, id)
	if err != nil {
		return nil, storeError("read key record", id, err)
	}
	if rec == nil || rec.ID != id {
		return nil, fmt.Errorf("read key record %q: store returned a different record", id)
	}
	return rec, nil
}

func (k *Keyring) storeWrite(ctx context.Context, rec *store.Record, create bool) error {
	k.wrapped.remove(rec.ID) // before and whatever the outcome: a cached copy may be stale now
	ctx, cancel := context.WithTimeout(ctx, k.opts.CallTimeout)
	defer cancel()
	if create {
		if err := k.st.Create(ctx, rec); err != nil {
			return storeError("create key record", rec.ID, err)
		}
		return nil
	}
	if err := k.st.Update(ctx, rec); err != nil {
		return storeError("update key record", rec.ID, err)
	}
	return nil
}

// storeError classifies a store error; the store's own sentinel stays in the chain.
func storeError(what, id string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%s %q: %w: %w", what, id, ErrNotFound, err)
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s %q: %w: %w", what, id, ErrUnavailable, err)
	default:
		return fmt.Errorf("%s %q: %w", what, id, err)
	}
}

// newSecret wraps plaintext key material unwrapped or generated by a region, taking ownership.
func (k *Keyring) newSecret(b []byte) *secret.Key {
	if k.derived != nil {
		return k.derived.New(b)
	}
	return secret.New(b)
}
