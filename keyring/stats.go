package keyring

import "time"

// RegionStatus is one region's health as the keyring sees it.
type RegionStatus struct {
	Name string
	// Healthy is true while the region's circuit breaker is closed.
	Healthy bool
	// Breaker is "closed", "open" or "half-open".
	Breaker string
	// ConsecutiveFailures counts unavailability failures since the last answer.
	ConsecutiveFailures int
	// LatencyEWMA is the moving average of answered calls' latency (0 before the first answer).
	LatencyEWMA time.Duration
}

// RegionStatus returns each region's health, in configuration order.
func (k *Keyring) RegionStatus() []RegionStatus {
	out := make([]RegionStatus, len(k.h.regions))
	for i, r := range k.h.regions {
		r.mu.Lock()
		out[i] = RegionStatus{
			Name:                r.name,
			Healthy:             r.state == closed,
			Breaker:             r.state.String(),
			ConsecutiveFailures: r.fails,
			LatencyEWMA:         time.Duration(r.ewma),
		}
		r.mu.Unlock()
	}
	return out
}

// Stats are cumulative counters since New, for metrics and tests.
type Stats struct {
	CacheHits       uint64 // Get/GetVersion served from the cache
	CacheMisses     uint64
	CacheEntries    int    // key ids cached now (stale ones included)
	StaleServed     uint64 // keys served past their TTL because a refresh failed (Options.MaxStale)
	DerivedDropped  uint64 // cached keys that dropped their derived state to make room (Options.CacheMaxDerived)
	StoreReads      uint64 // store Get calls
	Created         uint64 // records this keyring created (won the first write)
	CreateLimited   uint64 // creations refused by the creation rate limit (Options.CreateRate)
	NegativeHits    uint64 // Lookups answered "not found" from the negative cache, without a store read
	NegativeEntries int    // ids remembered as absent now (expired ones included until evicted)
	RepairedCopies  uint64 // wrapped copies added by repair
	PendingRepairs  int    // ids known to lack some region's copy (or due for lifecycle maintenance)
	// Version lifecycle.
	RotationsAge      uint64 // automatic rotations by age (Options.MaxAge)
	RotationsSeals    uint64 // automatic rotations by seal count (Options.MaxSeals)
	RotationsAdmin    uint64 // explicit rotations (Rotate)
	VersionsRetired   uint64 // versions retired by SetMinDecryptVersion
	VersionsDestroyed uint64 // retired versions whose copies were deleted
	RetiredRefused    uint64 // opens refused because the version is retired (ErrVersionRetired)
	SealReservations  uint64 // seal blocks reserved in the store
	// Hierarchical mode. KMS calls are in Regions; store reads in StoreReads.
	LocalWraps       uint64 // data keys wrapped locally under a branch key (creations, re-wraps)
	LocalUnwraps     uint64 // data keys unwrapped locally under a branch key (no KMS call)
	WrappedHits      uint64 // plaintext misses served a record from the wrapped-record cache (no store read)
	WrappedMisses    uint64
	WrappedEntries   int    // records in the wrapped-record cache now
	Rewrapped        uint64 // key versions re-wrapped under a newer branch key version
	RewrapScanned    uint64 // records examined by background re-wrap passes
	RewrapPasses     uint64 // background re-wrap passes started
	RewrapPassesDone uint64 // background re-wrap passes that reached the end of the store
	RewrapRunning    bool   // a background re-wrap pass is under way
	BranchRetires    uint64 // branch keys whose old versions this keyring retired after the grace
	Regions          []RegionStats
}

// RegionStats counts one region's calls.
type RegionStats struct {
	Name            string
	GenerateDataKey uint64 // calls made, whatever their outcome
	Encrypt         uint64
	Decrypt         uint64
	Probe           uint64 // breaker trial calls (an Encrypt of zeros)
	Failures        uint64 // calls that failed as unavailable (timeouts, refused, 5xx, throttling)
	Rejections      uint64 // calls the region answered with a refusal
	BreakerOpens    uint64
}

// Calls is the number of KMS calls of every kind, probes included.
func (s RegionStats) Calls() uint64 { return s.GenerateDataKey + s.Encrypt + s.Decrypt + s.Probe }

// Stats returns the keyring's counters.
func (k *Keyring) Stats() Stats {
	k.pendingMu.Lock()
	pending := len(k.pending)
	k.pendingMu.Unlock()
	s := Stats{
		CacheHits:       k.cache.hits.Load(),
		CacheMisses:     k.cache.misses.Load(),
		CacheEntries:    k.cache.len(),
		StaleServed:     k.staleHits.Load(),
		DerivedDropped:  k.derivedDropped(),
		StoreReads:      k.storeReads.Load(),
		Created:         k.created.Load(),
		CreateLimited:   k.limited.Load(),
		NegativeHits:    k.neg.hits.Load(),
		NegativeEntries: k.neg.len(),
		RepairedCopies:  k.repaired.Load(),
		PendingRepairs:  pending,

		RotationsAge:      k.rotations[0].Load(),
		RotationsSeals:    k.rotations[1].Load(),
		RotationsAdmin:    k.rotations[2].Load(),
		VersionsRetired:   k.retired.Load(),
		VersionsDestroyed: k.destroyed.Load(),
		RetiredRefused:    k.refusedRetired.Load(),
		SealReservations:  k.sealReservations.Load(),
		LocalWraps:        k.localWraps.Load(),
		LocalUnwraps:      k.localUnwraps.Load(),
		WrappedHits:       k.wrapped.hits.Load(),
		WrappedMisses:     k.wrapped.misses.Load(),
		WrappedEntries:    k.wrapped.len(),
		Rewrapped:         k.rewrapped.Load(),
		RewrapScanned:     k.rewrapScanned.Load(),
		RewrapPasses:      k.rewrapPasses.Load(),
		RewrapPassesDone:  k.rewrapDone.Load(),
		RewrapRunning:     k.rewrapRunning.Load(),
		BranchRetires:     k.branchRetired.Load(),
		Regions:           make([]RegionStats, len(k.h.regions)),
	}
	for i, r := range k.h.regions {
		s.Regions[i] = RegionStats{
			Name:            r.name,
			GenerateDataKey: r.calls[opGenerate].Load(),
			Encrypt:         r.calls[opEncrypt].Load(),
			Decrypt:         r.calls[opDecrypt].Load(),
			Probe:           r.calls[opProbe].Load(),
			Failures:        r.failures.Load(),
			Rejections:      r.rejections.Load(),
			BreakerOpens:    r.opens.Load(),
		}
	}
	return s
}

func (k *Keyring) derivedDropped() uint64 {
	if k.derived == nil {
		return 0
	}
	return k.derived.Dropped()
}
