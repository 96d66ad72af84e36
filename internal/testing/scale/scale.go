package scale

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rkms/rkms/internal/plan"
)

// Options are one run's parameters (the -scale.* flags of TestScale).
type Options struct {
	Tenants    int
	Replicas   int
	TTL        time.Duration // cache.ttl
	MaxKeys    int           // cache.max_keys
	Rate       float64       // requests/s over the fleet
	Dist       plan.Dist
	Spread     string // random | round-robin
	Warm       time.Duration
	Measure    time.Duration
	Samples    int
	Mode       plan.Mode
	BranchKeys int
	WrappedTTL time.Duration
	Workers    int // concurrent requests at most
}

// Region is one KMS region as a replica's configuration names it.
type Region struct {
	Name, KeyARN, Endpoint string
}

// ReplicaConfig renders the rkms configuration of one replica: its own data directory and
// loopback ports, the shared regions and dynalite table, the cache settings under test, no
// creation limit (the seeding creates every tenant) and no periodic maintenance pass (it would
// read the store on its own). The hierarchical keys are written only in hierarchical mode.
func ReplicaConfig(o Options, dataDir string, adminPort, extprocPort int, regions []Region, dynamo string, createTable bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "data_dir: %q\nlog: {level: warn, format: json}\n", dataDir)
	fmt.Fprintf(&b, "admin: {listen: \"127.0.0.1:%d\", grpc_listen: \"\"}\n", adminPort)
	fmt.Fprintf(&b, "extproc: {listen: \"127.0.0.1:%d\"}\n", extprocPort)
	b.WriteString("kms:\n  provider: aws\n  create_rate: -1\n")
	if o.Mode == plan.Hierarchical {
		fmt.Fprintf(&b, "  mode: hierarchical\n  hierarchical: {branch_keys: %d}\n", o.BranchKeys)
	}
	b.WriteString("  regions:\n")
	for _, r := range regions {
		fmt.Fprintf(&b, "    - {name: %q, key_id: %q, endpoint: %q}\n", r.Name, r.KeyARN, r.Endpoint)
	}
	fmt.Fprintf(&b, "store:\n  type: dynamodb\n  dynamodb: {table: rkms_scale, region: us-east-1, endpoint: %q, create_table: %t}\n", dynamo, createTable)
	fmt.Fprintf(&b, "cache:\n  ttl: %s\n  max_keys: %d\n", o.TTL, o.MaxKeys)
	if o.Mode == plan.Hierarchical {
		fmt.Fprintf(&b, "  wrapped_ttl: %s\n  wrapped_max_keys: %d\n", o.WrappedTTL, plan.DefaultWrappedMaxKeys)
	}
	b.WriteString("keyring:\n  rotation: {maintenance_interval: 0s}\n")
	return b.String()
}

// TenantID is the key id of tenant i (0-based).
func TenantID(i int) string { return fmt.Sprintf("scale-%07d", i) }

// Picker draws tenants under a distribution.
type Picker struct {
	cum []float64
}

// NewPicker prepares draws over n tenants.
func NewPicker(n int, d plan.Dist) *Picker {
	cum := make([]float64, n)
	acc := 0.0
	for i := range cum {
		w := 1.0
		if d.Kind == plan.Zipf {
			w = math.Pow(float64(i+1), -d.S)
		}
		acc += w
		cum[i] = acc
	}
	return &Picker{cum: cum}
}

// Pick returns a tenant index.
func (p *Picker) Pick(rng *rand.Rand) int {
	i := sort.SearchFloat64s(p.cum, rng.Float64()*p.cum[len(p.cum)-1])
	return min(i, len(p.cum)-1)
}

// Client calls the replicas' admin API with the run's token.
type Client struct {
	HTTP  *http.Client
	Token string
}

// GetKey reads (create: or creates) a tenant's key through the admin API at base; the key in
// the answer is discarded unread.
func (c *Client) GetKey(ctx context.Context, base, id string, create bool) error {
	u := base + "/key?id=" + url.QueryEscape(id)
	if !create {
		u += "&create=false"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("get key %s: %w", id, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get key %s at %s: %s", id, base, resp.Status)
	}
	return nil
}

// Traffic is what [Drive] sent.
type Traffic struct {
	Sent, Failed, Late atomic.Uint64
	FirstErr           atomic.Value // string
}

// Drive sends Poisson traffic at o.Rate over the tenants (picker) to the replicas (admin base
// URLs) until ctx ends, counting into tr (read it while Drive runs). Arrivals are scheduled
// ahead of time (open loop); an arrival that finds every worker busy is counted Late and
// dropped, so the rate sent is measured, not assumed.
func Drive(ctx context.Context, o Options, c *Client, bases []string, picker *Picker, seed uint64, tr *Traffic) {
	type job struct{ tenant, replica int }
	jobs := make(chan job, o.Workers)
	var wg sync.WaitGroup
	for w := 0; w < o.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if err := c.GetKey(ctx, bases[j.replica], TenantID(j.tenant), false); err != nil {
					if ctx.Err() != nil {
						return
					}
					tr.Failed.Add(1)
					tr.FirstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				tr.Sent.Add(1)
			}
		}()
	}
	rng := rand.New(rand.NewPCG(seed, seed+1))
	start := time.Now()
	next := 0.0
	rr := 0
loop:
	for {
		next += rng.ExpFloat64() / o.Rate
		if d := time.Until(start.Add(time.Duration(next * float64(time.Second)))); d > 0 {
			select {
			case <-ctx.Done():
				break loop
			case <-time.After(d):
			}
		}
		if ctx.Err() != nil {
			break
		}
		r := rng.IntN(len(bases))
		if o.Spread == "round-robin" {
			r, rr = rr, (rr+1)%len(bases)
		}
		select {
		case jobs <- job{picker.Pick(rng), r}:
		default:
			tr.Late.Add(1)
		}
	}
	close(jobs)
	wg.Wait()
}

// Calls are one replica's cumulative call counters, from its /metrics.
type Calls struct {
	KMSDecrypt float64 // rkms_kms_request_duration_seconds_count{op="decrypt"}, all regions
	KMSOther   float64 // generate_data_key and encrypt
	StoreGet   float64 // rkms_store_request_duration_seconds_count{op="get"}
}

// Scrape reads a replica's call counters from its /metrics.
func Scrape(ctx context.Context, hc *http.Client, base string) (Calls, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return Calls{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Calls{}, fmt.Errorf("scrape %s: %w", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Calls{}, fmt.Errorf("scrape %s: %s", base, resp.Status)
	}
	return ParseCalls(io.LimitReader(resp.Body, 8<<20))
}

// ParseCalls reads the call counters from a Prometheus text exposition.
func ParseCalls(r io.Reader) (Calls, error) {
	var c Calls
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, rest, ok := strings.Cut(line, "{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		switch {
		case name == "rkms_kms_request_duration_seconds_count" && strings.Contains(labels, `op="decrypt"`):
			c.KMSDecrypt += v
		case name == "rkms_kms_request_duration_seconds_count":
			c.KMSOther += v
		case name == "rkms_store_request_duration_seconds_count" && strings.Contains(labels, `op="get"`):
			c.StoreGet += v
		}
	}
	return c, sc.Err()
}

// Sub returns c - d.
func (c Calls) Sub(d Calls) Calls {
	return Calls{KMSDecrypt: c.KMSDecrypt - d.KMSDecrypt, KMSOther: c.KMSOther - d.KMSOther, StoreGet: c.StoreGet - d.StoreGet}
}
