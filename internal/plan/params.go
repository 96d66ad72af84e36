package plan

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Mode is kms.mode: how tenant keys are wrapped.
type Mode string

const (
	Direct       Mode = "direct"       // every tenant key wrapped under the regional KMS keys
	Hierarchical Mode = "hierarchical" // tenant keys wrapped under branch keys
)

// Defaults of the contract between the planner and the keyring (issue 19), and the pricing and
// quota assumptions (doc.go).
const (
	DefaultTTL            = 5 * time.Minute // cache.ttl
	DefaultMaxKeys        = 100000          // cache.max_keys
	DefaultBranchKeys     = 1               // kms.hierarchical.branch_keys
	DefaultWrappedTTL     = time.Hour       // cache.wrapped_ttl
	DefaultWrappedMaxKeys = 100000          // cache.wrapped_max_keys
	DefaultRegions        = 3               // kms.regions of the embedded defaults
	// DefaultKMSQuota is the assumed shared symmetric cryptographic request quota of one KMS
	// region (requests/s). AWS's default is 5,500, 10,000, 50,000 or 100,000 by region.
	DefaultKMSQuota = 10000
	// KMSPricePer10k is the price of 10,000 KMS requests in USD.
	KMSPricePer10k = 0.03
	// SecondsPerMonth is a 30-day month.
	SecondsPerMonth = 30 * 24 * 3600
)

// Bounds on the inputs: the computation is linear in the tenants (Zipf) and must stay fast.
const (
	MaxTenants  = 100_000_000
	MaxReplicas = 100_000
	MaxBranches = 1_000_000
	MaxRegions  = 64
)

// Params are the planner's inputs. Zero values of the optional fields take the defaults above
// (see [Params.withDefaults]).
type Params struct {
	Tenants  int           // active tenants (N)
	Replicas int           // rkms replicas behind the load balancer (R)
	TTL      time.Duration // cache.ttl (T)
	// MaxKeys is cache.max_keys (M); negative: unbounded.
	MaxKeys        int
	Mode           Mode
	BranchKeys     int           // kms.hierarchical.branch_keys (B)
	WrappedTTL     time.Duration // cache.wrapped_ttl (W)
	WrappedMaxKeys int           // cache.wrapped_max_keys; negative: unbounded
	// Rate is the request rate over the fleet (requests/s); 0: the worst case (every tenant
	// reaches every replica at least once per TTL).
	Rate     float64
	Dist     Dist
	Regions  int     // KMS regions (K)
	KMSQuota float64 // requests/s per region
}

// withDefaults returns p with zero optional fields set to their defaults.
func (p Params) withDefaults() Params {
	if p.TTL == 0 {
		p.TTL = DefaultTTL
	}
	if p.MaxKeys == 0 {
		p.MaxKeys = DefaultMaxKeys
	}
	if p.Mode == "" {
		p.Mode = Direct
	}
	if p.BranchKeys == 0 {
		p.BranchKeys = DefaultBranchKeys
	}
	if p.WrappedTTL == 0 {
		p.WrappedTTL = DefaultWrappedTTL
	}
	if p.WrappedMaxKeys == 0 {
		p.WrappedMaxKeys = DefaultWrappedMaxKeys
	}
	if p.Dist.Kind == "" {
		p.Dist = Dist{Kind: Uniform}
	}
	if p.Regions == 0 {
		p.Regions = DefaultRegions
	}
	if p.KMSQuota == 0 {
		p.KMSQuota = DefaultKMSQuota
	}
	return p
}

// validate returns every problem of p (after defaults) at once.
func (p Params) validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if p.Tenants < 1 || p.Tenants > MaxTenants {
		bad("tenants %d: want 1..%d", p.Tenants, MaxTenants)
	}
	if p.Replicas < 1 || p.Replicas > MaxReplicas {
		bad("replicas %d: want 1..%d", p.Replicas, MaxReplicas)
	}
	if p.TTL < time.Millisecond || p.TTL > 365*24*time.Hour {
		bad("ttl %s: want 1ms..8760h", p.TTL)
	}
	if p.WrappedTTL < time.Millisecond || p.WrappedTTL > 365*24*time.Hour {
		bad("wrapped ttl %s: want 1ms..8760h", p.WrappedTTL)
	}
	if p.Mode != Direct && p.Mode != Hierarchical {
		bad("mode %q: want direct or hierarchical", p.Mode)
	}
	if p.BranchKeys < 1 || p.BranchKeys > MaxBranches {
		bad("branch keys %d: want 1..%d", p.BranchKeys, MaxBranches)
	}
	if p.Regions < 1 || p.Regions > MaxRegions {
		bad("regions %d: want 1..%d", p.Regions, MaxRegions)
	}
	if !(p.Rate >= 0) || math.IsInf(p.Rate, 0) || p.Rate > 1e12 {
		bad("rate %v: want 0 (worst case) or a positive number of requests/s up to 1e12", p.Rate)
	}
	if !(p.KMSQuota > 0) || math.IsInf(p.KMSQuota, 0) {
		bad("kms quota %v: want a positive number of requests/s", p.KMSQuota)
	}
	if err := p.Dist.validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// DistKind names a tenant popularity distribution.
type DistKind string

const (
	Uniform DistKind = "uniform"
	Zipf    DistKind = "zipf"
)

// MaxZipfS bounds the Zipf exponent.
const MaxZipfS = 10

// Dist is how requests pick a tenant: Uniform, or Zipf with exponent S (tenant i, counted from
// 1, with probability proportional to 1/i^S).
type Dist struct {
	Kind DistKind
	S    float64
}

// String is the form [ParseDist] reads.
func (d Dist) String() string {
	if d.Kind == Zipf {
		return "zipf:" + strconv.FormatFloat(d.S, 'g', -1, 64)
	}
	return string(d.Kind)
}

func (d Dist) validate() error {
	switch d.Kind {
	case Uniform:
		return nil
	case Zipf:
		if !(d.S >= 0 && d.S <= MaxZipfS) {
			return fmt.Errorf("zipf exponent %v: want 0..%d", d.S, MaxZipfS)
		}
		return nil
	}
	return fmt.Errorf("distribution %q: want uniform or zipf:S", d.Kind)
}

// ParseDist reads "uniform" or "zipf:S" (S a number in 0..10, e.g. zipf:1.1).
func ParseDist(s string) (Dist, error) {
	if len(s) > 64 {
		return Dist{}, fmt.Errorf("distribution: %d bytes, want at most 64", len(s))
	}
	if s == string(Uniform) {
		return Dist{Kind: Uniform}, nil
	}
	rest, ok := strings.CutPrefix(s, "zipf:")
	if !ok {
		return Dist{}, fmt.Errorf("distribution %q: want uniform or zipf:S", s)
	}
	v, err := strconv.ParseFloat(rest, 64)
	if err != nil {
		return Dist{}, fmt.Errorf("distribution %q: exponent: %w", s, err)
	}
	d := Dist{Kind: Zipf, S: v}
	if err := d.validate(); err != nil {
		return Dist{}, err
	}
	return d, nil
}
