package plan

import (
	"bytes"
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run with -update after checking):\n--- got ---\n%s\n--- want ---\n%s", name, got, want)
	}
}

// IssueScenarios are issue 19's table: (tenants, replicas) at cache.ttl 5m.
var issueScenarios = [][2]int{{10000, 5}, {100000, 20}, {1000000, 50}}

// TestIssueTable: the README's "Choosing a KMS mode" table, both modes, is this output; the
// direct rows reproduce the issue's arithmetic (167/s, 6,667/s, 166,667/s; 0.43 G, 17.3 G, 432 G
// requests a month; about $1,300 and $52,000).
func TestIssueTable(t *testing.T) {
	var rs []Result
	for _, m := range []Mode{Direct, Hierarchical} {
		for _, s := range issueScenarios {
			r, err := Compute(Params{Tenants: s[0], Replicas: s[1], Mode: m})
			if err != nil {
				t.Fatal(err)
			}
			rs = append(rs, r)
		}
	}
	for i, want := range []struct{ rate, monthly, cost float64 }{{166.67, 0.432e9, 1296}, {6666.7, 17.28e9, 51840}, {166666.7, 432e9, 1296000}} {
		r := rs[i]
		if !near(r.KMS(), want.rate, 1e-3) || !near(r.KMSMonthly(), want.monthly, 1e-3) || !near(r.KMSCostMonthly(), want.cost, 1e-3) {
			t.Errorf("direct %v: %.1f/s %.3g/month $%.0f, want %v", issueScenarios[i], r.KMS(), r.KMSMonthly(), r.KMSCostMonthly(), want)
		}
	}
	var b bytes.Buffer
	if err := WriteTable(&b, rs); err != nil {
		t.Fatal(err)
	}
	golden(t, "issue-table.md", b.Bytes())
	// The README carries the same table.
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(readme, b.Bytes()) {
		t.Errorf("README.md does not contain the planner's table (testdata/issue-table.md) verbatim")
	}
}

// TestWriteGolden: the report of rkms plan, one golden file per case.
func TestWriteGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    Params
	}{
		{"direct-10k-5.txt", Params{Tenants: 10000, Replicas: 5}},
		{"direct-1m-50.txt", Params{Tenants: 1000000, Replicas: 50}},
		{"hierarchical-100k-20.txt", Params{Tenants: 100000, Replicas: 20, Mode: Hierarchical, BranchKeys: 4}},
		{"direct-zipf-rate.txt", Params{Tenants: 100000, Replicas: 20, Rate: 5000, Dist: Dist{Kind: Zipf, S: 1.1}, KMSQuota: 5500}},
		{"direct-lru-rate.txt", Params{Tenants: 200000, Replicas: 4, Rate: 20000, MaxKeys: 50000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Compute(tc.p)
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			if err := Write(&b, r); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name, b.Bytes())
		})
	}
}

func near(got, want, rel float64) bool { return math.Abs(got-want) <= rel*math.Abs(want) }

// TestComputeRejects: bounds on every input, all problems at once.
func TestComputeRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    Params
		want []string
	}{
		{"nothing", Params{}, []string{"tenants 0", "replicas 0"}},
		{"huge", Params{Tenants: MaxTenants + 1, Replicas: MaxReplicas + 1, Regions: MaxRegions + 1, BranchKeys: -1}, []string{"tenants", "replicas", "regions", "branch keys"}},
		{"nan rate", Params{Tenants: 1, Replicas: 1, Rate: math.NaN()}, []string{"rate NaN"}},
		{"inf rate", Params{Tenants: 1, Replicas: 1, Rate: math.Inf(1)}, []string{"rate +Inf"}},
		{"negative quota", Params{Tenants: 1, Replicas: 1, KMSQuota: -1}, []string{"kms quota"}},
		{"mode", Params{Tenants: 1, Replicas: 1, Mode: "both"}, []string{`mode "both"`}},
		{"ttl", Params{Tenants: 1, Replicas: 1, TTL: time.Microsecond}, []string{"ttl 1µs"}},
		{"zipf", Params{Tenants: 1, Replicas: 1, Dist: Dist{Kind: Zipf, S: 11}}, []string{"zipf exponent 11"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compute(tc.p)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestRateLimitsToWorstCase: as traffic grows, the rate model tends to the worst case (one
// fetch per tenant, replica and TTL), from below.
func TestRateLimitsToWorstCase(t *testing.T) {
	worst, err := Compute(Params{Tenants: 1000, Replicas: 4, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	prev := 0.0
	for _, rate := range []float64{1, 10, 100, 1e3, 1e4, 1e5, 1e7} {
		r, err := Compute(Params{Tenants: 1000, Replicas: 4, TTL: time.Minute, Rate: rate})
		if err != nil {
			t.Fatal(err)
		}
		if r.KMS() <= prev || r.KMS() > worst.KMS() {
			t.Errorf("rate %v: %v/s, want increasing and at most %v", rate, r.KMS(), worst.KMS())
		}
		prev = r.KMS()
	}
	if !near(prev, worst.KMS(), 1e-3) {
		t.Errorf("at 1e7 requests/s: %v, want about %v", prev, worst.KMS())
	}
}

// TestRenewalsAgainstSampling checks m(t) of the hierarchical wrapped cycle by sampling.
func TestRenewalsAgainstSampling(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct{ lambda, ttl, t float64 }{{0.1, 10, 40}, {1, 10, 45}, {0.01, 10, 100}, {5, 3, 30}} {
		const n = 100000
		total := 0
		for i := 0; i < n; i++ {
			s := 0.0
			for {
				s += tc.ttl + rng.ExpFloat64()/tc.lambda
				if s > tc.t {
					break
				}
				total++
			}
		}
		got, want := renewals(tc.lambda, tc.ttl, tc.t), float64(total)/n
		if math.Abs(got-want) > 0.01*math.Max(1, want) {
			t.Errorf("m(%v) λ=%v T=%v: %v, sampled %v", tc.t, tc.lambda, tc.ttl, got, want)
		}
	}
}

// TestResidenceAgainstSampling checks E[min(T, τ)] of the LRU model by sampling.
func TestResidenceAgainstSampling(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct{ lambda, ttl, c float64 }{{0.5, 10, 2}, {0.1, 10, 5}, {2, 10, 1}, {1, 10, 9}, {0.05, 10, 0.5}} {
		const n = 200000
		sum := 0.0
		for i := 0; i < n; i++ {
			s := 0.0
			for {
				gap := rng.ExpFloat64() / tc.lambda
				if gap >= tc.c {
					s += tc.c
					break
				}
				s += gap
				if s >= tc.ttl {
					break
				}
			}
			sum += math.Min(s, tc.ttl)
		}
		got, want := residence(tc.lambda, tc.ttl, tc.c), sum/n
		if math.Abs(got-want) > 0.01*want {
			t.Errorf("λ=%v T=%v C=%v: %v, sampled %v", tc.lambda, tc.ttl, tc.c, got, want)
		}
	}
}

func TestParseDist(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Dist
		ok   bool
	}{
		{"uniform", Dist{Kind: Uniform}, true},
		{"zipf:1.1", Dist{Kind: Zipf, S: 1.1}, true},
		{"zipf:0", Dist{Kind: Zipf}, true},
		{"zipf:", Dist{}, false},
		{"zipf:-1", Dist{}, false},
		{"zipf:NaN", Dist{}, false},
		{"zipf:1e400", Dist{}, false},
		{"Uniform", Dist{}, false},
		{"zipf:1.1 ", Dist{}, false},
		{strings.Repeat("z", 65), Dist{}, false},
	} {
		got, err := ParseDist(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseDist(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// FuzzParseDist: any input is accepted only as a valid distribution whose String parses back.
func FuzzParseDist(f *testing.F) {
	for _, s := range []string{"uniform", "zipf:1.1", "zipf:0", "zipf:", "zipf:1e9", "zipf:0x1p-2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDist(s)
		if err != nil {
			return
		}
		if err := d.validate(); err != nil {
			t.Fatalf("ParseDist(%q) returned an invalid %v: %v", s, d, err)
		}
		back, err := ParseDist(d.String())
		if err != nil || back != d {
			t.Fatalf("round trip of %q: %v -> %q -> %v, %v", s, d, d.String(), back, err)
		}
	})
}
