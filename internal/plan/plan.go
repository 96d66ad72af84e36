package plan

import (
	"fmt"
	"math"
)

// Result is the planner's answer for one [Params]. Rates are per second.
type Result struct {
	Params Params // as given, with the defaults filled in

	KMSPerReplica   float64 // KMS Decrypt calls/s of one replica
	StorePerReplica float64 // store (DynamoDB) reads/s of one replica
	// CachedPerReplica is the expected number of tenant keys one replica holds in plaintext.
	CachedPerReplica float64
	// WrappedPerReplica is the expected number of wrapped tenant records one replica holds
	// (hierarchical mode).
	WrappedPerReplica float64
	// LRUBound reports that cache.max_keys evicts entries before cache.ttl (modelled when a rate
	// is given).
	LRUBound bool
	Warnings []string
}

// KMS is the fleet's KMS Decrypt calls/s.
func (r Result) KMS() float64 { return r.KMSPerReplica * float64(r.Params.Replicas) }

// Store is the fleet's store reads/s.
func (r Result) Store() float64 { return r.StorePerReplica * float64(r.Params.Replicas) }

// KMSPerRegion is the KMS calls/s of one region when the replicas are spread evenly over the
// regions, each reading its nearest one.
func (r Result) KMSPerRegion() float64 { return r.KMS() / float64(r.Params.Regions) }

// KMSMonthly is the fleet's KMS requests in a 30-day month.
func (r Result) KMSMonthly() float64 { return r.KMS() * SecondsPerMonth }

// StoreMonthly is the fleet's store reads in a 30-day month.
func (r Result) StoreMonthly() float64 { return r.Store() * SecondsPerMonth }

// KMSCostMonthly is the monthly KMS bill of the steady state, in USD.
func (r Result) KMSCostMonthly() float64 { return r.KMSMonthly() / 10000 * KMSPricePer10k }

// Compute applies the formulas of doc.go to p.
func Compute(p Params) (Result, error) {
	p = p.withDefaults()
	if err := p.validate(); err != nil {
		return Result{}, fmt.Errorf("plan: %w", err)
	}
	r := Result{Params: p}
	t := p.TTL.Seconds()
	n := float64(p.Tenants)
	if p.Rate == 0 {
		r.worstCase(t, n)
		return r, nil
	}
	cs := classes(p.Tenants, p.Dist)
	lambdas := make([]float64, len(cs))
	for i, c := range cs {
		lambdas[i] = p.Rate * c.p / float64(p.Replicas)
	}
	res, bound := lruResidence(cs, lambdas, t, p.MaxKeys)
	r.LRUBound = bound
	var fetch float64
	for i, c := range cs {
		f, o := cycle(lambdas[i], res[i])
		fetch += c.n * f
		r.CachedPerReplica += c.n * o
	}
	if bound {
		r.warn("the expected active keys per replica exceed cache.max_keys %s: the LRU evicts keys before cache.ttl (modelled: Che's approximation)", maxKeys(p.MaxKeys))
	}
	if p.Mode == Direct {
		r.KMSPerReplica, r.StorePerReplica = fetch, fetch
		return r, nil
	}
	b := float64(p.BranchKeys)
	branch, _ := cycle(p.Rate/float64(p.Replicas)/b, t)
	r.KMSPerReplica = b * branch
	w := p.WrappedTTL.Seconds()
	var wrapped float64
	for i, c := range cs {
		period := res[i] + 1/lambdas[i] // one plaintext cycle
		wc := period                    // one wrapped cycle: every plaintext miss reads when W <= life
		if w > res[i] {
			wc = period * (1 + renewals(lambdas[i], res[i], w))
		}
		wrapped += c.n / wc
		r.WrappedPerReplica += c.n * math.Min(w, wc) / wc
	}
	r.StorePerReplica = r.KMSPerReplica + wrapped
	r.wrappedWarning()
	return r, nil
}

// worstCase fills r for the assumption: every tenant reaches every replica at least
// once per TTL.
func (r *Result) worstCase(t, n float64) {
	p := r.Params
	r.CachedPerReplica = n
	if p.MaxKeys >= 0 && p.Tenants > p.MaxKeys {
		r.LRUBound = true
		r.warn("%d tenants exceed cache.max_keys %d: each replica evicts keys before cache.ttl, so the calls are higher than shown (up to one per request for the evicted tenants); give --rate to model it", p.Tenants, p.MaxKeys)
		r.CachedPerReplica = float64(p.MaxKeys)
	}
	if p.Mode == Direct {
		r.KMSPerReplica, r.StorePerReplica = n/t, n/t
		return
	}
	b := float64(p.BranchKeys)
	w := math.Max(p.WrappedTTL.Seconds(), t)
	r.KMSPerReplica = b / t
	r.StorePerReplica = b/t + n/w
	r.WrappedPerReplica = n
	r.wrappedWarning()
}

func (r *Result) wrappedWarning() {
	p := r.Params
	if p.WrappedMaxKeys >= 0 && r.WrappedPerReplica > float64(p.WrappedMaxKeys) {
		r.warn("the expected wrapped records per replica (%.0f) exceed cache.wrapped_max_keys %d: store reads are higher than shown", r.WrappedPerReplica, p.WrappedMaxKeys)
	}
}

func (r *Result) warn(format string, a ...any) {
	r.Warnings = append(r.Warnings, fmt.Sprintf(format, a...))
}
