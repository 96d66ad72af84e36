package load

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/rkms/rkms/internal/testing/envoytest"
)

// Result is one measured run.
type Result struct {
	Requests int // completed successfully
	Errors   int // failed (the first error is kept)
	FirstErr error
	Elapsed  time.Duration
	lat      []time.Duration
}

// Throughput is completed requests per second.
func (r *Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// Percentile returns the q-quantile (0..1) of the latencies.
func (r *Result) Percentile(q float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	if !slices.IsSorted(r.lat) {
		slices.Sort(r.lat)
	}
	i := int(q * float64(len(r.lat)))
	return r.lat[min(i, len(r.lat)-1)]
}

// merge adds o to r (rounds of the same configuration).
func (r *Result) merge(o *Result) {
	r.Requests += o.Requests
	r.Errors += o.Errors
	if r.FirstErr == nil {
		r.FirstErr = o.FirstErr
	}
	r.Elapsed += o.Elapsed
	r.lat = append(r.lat, o.lat...)
	slices.Sort(r.lat)
}

// pairedMedian returns the median over rounds of f(a's round, b's round): a comparison of two
// configurations measured back to back, so that load changing from round to round (other
// processes on the machine) affects both sides of each pair alike.
func pairedMedian(a, b []*Result, f func(a, b *Result) float64) float64 {
	var v []float64
	for i := range min(len(a), len(b)) {
		v = append(v, f(a[i], b[i]))
	}
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// recorder collects the outcome of requests from several goroutines.
type collector struct {
	mu  sync.Mutex
	res Result
}

func (c *collector) add(lat []time.Duration, errs int, first error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.res.lat = append(c.res.lat, lat...)
	c.res.Requests += len(lat)
	c.res.Errors += errs
	if c.res.FirstErr == nil {
		c.res.FirstErr = first
	}
}

// closedLoop runs workers that each issue one request after another until d has passed or
// limit requests have been started, and reports what completed.
func closedLoop(ctx context.Context, workers int, d time.Duration, limit int64, do func(ctx context.Context, n int) error) *Result {
	var rec collector
	var started atomic.Int64
	ctx, cancel := context.WithTimeout(ctx, d+10*time.Second) // bounds a stuck request
	defer cancel()
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			errs := 0
			var first error
			for time.Now().Before(end) {
				n := started.Add(1)
				if n > limit {
					break
				}
				t0 := time.Now()
				if err := do(ctx, int(n)); err != nil {
					errs++
					if first == nil {
						first = err
					}
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			rec.add(lat, errs, first)
		}()
	}
	wg.Wait()
	rec.res.Elapsed = time.Since(start)
	return &rec.res
}

// openLoop offers requests at rate per second for d, whatever the latency, with at most
// maxInFlight outstanding. Latency counts from the scheduled start, so that a server that falls
// behind is charged for the queueing it causes.
func openLoop(ctx context.Context, rate float64, d time.Duration, maxInFlight int, do func(ctx context.Context, n int) error) *Result {
	var rec collector
	total := int(rate * d.Seconds())
	interval := time.Duration(float64(time.Second) / rate)
	ctx, cancel := context.WithTimeout(ctx, d+10*time.Second)
	defer cancel()
	type job struct {
		due time.Time
		n   int
	}
	jobs := make(chan job, maxInFlight)
	var wg sync.WaitGroup
	for range maxInFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			errs := 0
			var first error
			for j := range jobs {
				if err := do(ctx, j.n); err != nil {
					errs++
					if first == nil {
						first = err
					}
					continue
				}
				lat = append(lat, time.Since(j.due))
			}
			rec.add(lat, errs, first)
		}()
	}
	start := time.Now()
	for i := range total {
		due := start.Add(time.Duration(i) * interval)
		if w := time.Until(due); w > 0 {
			time.Sleep(w)
		}
		if ctx.Err() != nil {
			break
		}
		jobs <- job{due, i}
	}
	close(jobs)
	wg.Wait()
	rec.res.Elapsed = time.Since(start)
	return &rec.res
}

// streamer returns a request function that plays x against client. Tenants are taken in turn
// by a counter of its own, not from n: n restarts at each round, so with n a run of five rounds
// would only ever reach the first fifth of the tenants, and most keys would never be used.
func streamer(client extprocv3.ExternalProcessorClient, x *Exchange) func(ctx context.Context, n int) error {
	var next atomic.Int64
	return func(ctx context.Context, _ int) error {
		return x.Run(PolicyContext(ctx), client, int(next.Add(1)-1))
	}
}

// mintTokens returns the Authorization header of tenants 0..n-1: a token of internal/testing/envoytest's
// test key, which the load's Envoy verifies (its JWKS is written by [startEnvoy]), valid for
// ttl. Minted before the run, so that signing costs the client nothing while it measures.
func mintTokens(n int, ttl time.Duration) ([]string, error) {
	iss, now := envoytest.TestIssuer(), time.Now()
	out := make([]string, max(n, 1))
	for i := range out {
		tok, err := iss.Sign(iss.Tenant(TenantValue(i), now, ttl))
		if err != nil {
			return nil, err
		}
		out[i] = "Bearer " + tok
	}
	return out, nil
}
