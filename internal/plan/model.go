package plan

import (
	"math"
)

// class is n tenants that each receive a fraction p of the requests.
type class struct {
	n float64
	p float64
}

// exactRanks is how many of the most popular Zipf tenants get a class of their own; the others
// share classes of ranks within a factor bucketRatio, each at its mean probability (the
// per-tenant terms are smooth in the rank, so the error is far below 0.01 %).
const (
	exactRanks  = 1000
	bucketRatio = 1.01
)

// classes splits n tenants by popularity under d.
func classes(n int, d Dist) []class {
	if d.Kind != Zipf || d.S == 0 {
		return []class{{n: float64(n), p: 1 / float64(n)}}
	}
	var cs []class
	total := 0.0
	for i := 1; i <= n && i <= exactRanks; i++ {
		w := math.Pow(float64(i), -d.S)
		cs = append(cs, class{n: 1, p: w})
		total += w
	}
	for a := exactRanks + 1; a <= n; {
		b := int(math.Ceil(float64(a) * bucketRatio))
		if b <= a {
			b = a + 1
		}
		if b > n+1 {
			b = n + 1
		}
		// Σ_{i=a}^{b-1} i^-s by the midpoint rule: ∫_{a-1/2}^{b-1/2} x^-s dx.
		w := powIntegral(float64(a)-0.5, float64(b)-0.5, d.S)
		cs = append(cs, class{n: float64(b - a), p: w / float64(b-a)})
		total += w
		a = b
	}
	for i := range cs {
		cs[i].p /= total
	}
	return cs
}

// powIntegral is ∫_x^y t^-s dt.
func powIntegral(x, y, s float64) float64 {
	if math.Abs(s-1) < 1e-12 {
		return math.Log(y / x)
	}
	return (math.Pow(y, 1-s) - math.Pow(x, 1-s)) / (1 - s)
}

// cycle is the renewal rate and cached fraction of one entry whose uses arrive at rate lambda
// and which lives r after each fetch.
func cycle(lambda, r float64) (rate, occupancy float64) {
	if lambda <= 0 {
		return 0, 0
	}
	period := r + 1/lambda
	return 1 / period, r / period
}

// residence is E[min(T, τ)]: the expected life of an entry fetched at 0 in a cache that evicts
// it at T or once it went unused for c (LRU characteristic time), with uses arriving as a
// Poisson process of rate lambda. See doc.go, "The LRU bound".
func residence(lambda, t, c float64) float64 {
	if c >= t {
		return t
	}
	if c <= 0 {
		return 0
	}
	lc := lambda * c
	// E[τ]: the expected time until the first gap of c (a geometric number of shorter gaps).
	var meanTau float64
	if lc > 700 {
		meanTau = math.Inf(1)
	} else {
		meanTau = math.Expm1(lc) / lambda
	}
	switch {
	case meanTau < t/200:
		return meanTau // τ is almost always far below T: min(T, τ) = τ within 0.5 %
	case meanTau > 200*t:
		// τ is nearly exponential (a rare event) and rarely below T: E[min(T, τ)] ≈ T (1 - T/2E[τ]).
		return t * (1 - t/(2*meanTau))
	}
	// The delay equation on a grid of k steps per c, at most maxSteps in all.
	const maxSteps = 2000
	k := int(math.Min(32, math.Floor(maxSteps*c/t)))
	if k < 1 {
		return math.Min(t, meanTau)
	}
	h := c / float64(k)
	steps := int(math.Ceil(t / h))
	q := make([]float64, steps+1)
	for i := 0; i < k && i <= steps; i++ {
		q[i] = 1
	}
	hazard := lambda * math.Exp(-lc)
	integral := c // q = 1 on [0, c)
	if k <= steps {
		q[k] = -math.Expm1(-lc)
	}
	for i := k + 1; i <= steps; i++ {
		q[i] = q[i-1] - h*hazard*(q[i-1-k]+q[i-k])/2
		if q[i] < 0 {
			q[i] = 0
		}
	}
	// Trapezoids from c to t (the last one cut at t).
	for i := k; i < steps; i++ {
		lo := float64(i) * h
		hi := math.Min(lo+h, t)
		if hi <= lo {
			break
		}
		integral += (hi - lo) * (q[i] + q[i+1]) / 2
	}
	return math.Min(integral, t)
}

// lruResidence returns, for each class, the expected life of an entry under TTL t and an LRU
// bound of m entries (m < 0: unbounded), with per-class use rates lambdas; bound reports
// whether the LRU evicts before t (the expected occupancy without it exceeds m).
func lruResidence(cs []class, lambdas []float64, t float64, m int) (res []float64, bound bool) {
	res = make([]float64, len(cs))
	occ := func(c float64) float64 {
		sum := 0.0
		for i, cl := range cs {
			_, o := cycle(lambdas[i], residence(lambdas[i], t, c))
			sum += cl.n * o
		}
		return sum
	}
	if m < 0 || occ(t) <= float64(m) {
		for i := range res {
			res[i] = t
		}
		return res, false
	}
	lo, hi := 0.0, t
	for iter := 0; iter < 50 && hi-lo > t*1e-6; iter++ {
		mid := (lo + hi) / 2
		if occ(mid) > float64(m) {
			hi = mid
		} else {
			lo = mid
		}
	}
	c := (lo + hi) / 2
	for i := range cs {
		res[i] = residence(lambdas[i], t, c)
	}
	return res, true
}

// renewals is m(t), the expected number of renewals in (0, t] of a renewal process whose
// intervals are T + Exp(lambda). See doc.go, "Hierarchical mode".
func renewals(lambda, ttl, t float64) float64 {
	if t < ttl {
		return 0
	}
	mean := ttl + 1/lambda
	kmax := int(t / ttl)
	if kmax > 2000 {
		// Far beyond the transient: the renewal theorem, m(t) ≈ t/μ + E[X²]/(2μ²) - 1.
		ex2 := ttl*ttl + 2*ttl/lambda + 2/(lambda*lambda)
		return t/mean + ex2/(2*mean*mean) - 1
	}
	sum := 0.0
	for k := 1; k <= kmax; k++ {
		x := lambda * (t - float64(k)*ttl)
		sum += poissonAtLeast(x, k)
	}
	return sum
}

// poissonAtLeast is P(Poisson(mu) ≥ k) = P(Gamma(k, 1) ≤ mu), summed in log space.
func poissonAtLeast(mu float64, k int) float64 {
	if mu <= 0 {
		return 0
	}
	below := 0.0 // P(Poisson(mu) < k)
	logTerm := -mu
	for j := 0; j < k; j++ {
		if j > 0 {
			logTerm += math.Log(mu) - math.Log(float64(j))
		}
		below += math.Exp(logTerm)
	}
	return math.Max(0, 1-below)
}
