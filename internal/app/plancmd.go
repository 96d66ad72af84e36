package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rkms/rkms/internal/config"
	"github.com/rkms/rkms/internal/plan"
)

var planCommand = command{name: "plan", help: `usage: rkms plan --tenants N --replicas R [--ttl D] [--mode direct|hierarchical] [FLAGS]

Prints the steady KMS Decrypt and DynamoDB read rates of a fleet of rkms replicas, per replica,
per KMS region and in total, the monthly request counts, the monthly KMS cost ($0.03 per 10,000
requests) and the headroom under the KMS request quota. The formulas are in internal/plan/doc.go
and README.md, "Choosing a KMS mode".

Without --rate it assumes the worst case: every tenant reaches every replica at least once per
cache.ttl. With --rate (requests/s over the fleet) and --dist, it computes the expected calls for
Poisson arrivals spread uniformly over the replicas, including the cache.max_keys LRU bound.

--config FILE reads cache.ttl, cache.max_keys, the number of kms.regions and (when present)
kms.mode, kms.hierarchical.branch_keys, cache.wrapped_ttl and cache.wrapped_max_keys from an rkms
configuration; flags override them.

Comma-separated lists of --tenants and --replicas (paired, same length) and of --mode print one
Markdown table row per combination instead (the README's table):
  rkms plan --tenants 10000,100000,1000000 --replicas 5,20,50 --mode direct,hierarchical
`}

// planFlags are the flags of rkms plan, parsed before the config file is read.
type planFlags struct {
	tenants, replicas, modes string
	ttl, wrappedTTL          time.Duration
	branchKeys, regions      int
	maxKeys, wrappedMaxKeys  int
	rate, kmsQuota           float64
	dist, config             string
}

func planCmd(args []string, stdout, stderr io.Writer) int {
	fs := planCommand.flags(stderr)
	var f planFlags
	fs.StringVar(&f.tenants, "tenants", "", "active tenants (comma-separated list: a table)")
	fs.StringVar(&f.replicas, "replicas", "", "rkms replicas (comma-separated list, paired with --tenants)")
	fs.DurationVar(&f.ttl, "ttl", plan.DefaultTTL, "cache.ttl")
	fs.StringVar(&f.modes, "mode", string(plan.Direct), "kms.mode: direct or hierarchical (comma-separated list: a table)")
	fs.IntVar(&f.branchKeys, "branch-keys", plan.DefaultBranchKeys, "kms.hierarchical.branch_keys")
	fs.DurationVar(&f.wrappedTTL, "wrapped-ttl", plan.DefaultWrappedTTL, "cache.wrapped_ttl")
	fs.IntVar(&f.maxKeys, "cache-max-keys", plan.DefaultMaxKeys, "cache.max_keys (negative: unbounded)")
	fs.IntVar(&f.wrappedMaxKeys, "wrapped-max-keys", plan.DefaultWrappedMaxKeys, "cache.wrapped_max_keys (negative: unbounded)")
	fs.Float64Var(&f.rate, "rate", 0, "requests/s over the fleet; 0: the worst case")
	fs.StringVar(&f.dist, "dist", "uniform", "tenant popularity with --rate: uniform or zipf:S")
	fs.IntVar(&f.regions, "regions", plan.DefaultRegions, "KMS regions (kms.regions)")
	fs.Float64Var(&f.kmsQuota, "kms-quota", plan.DefaultKMSQuota, "KMS shared symmetric request quota per region, requests/s (AWS default: 5,500, 10,000, 50,000 or 100,000 by region)")
	fs.StringVar(&f.config, "config", "", "rkms configuration to read the cache and KMS settings from")
	if code, ok := planCommand.parse(fs, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() != 0 {
		return planCommand.usageError(stderr, fmt.Sprintf("unexpected arguments %v", fs.Args()))
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	params, err := planParams(f, set)
	if err != nil {
		return planCommand.usageError(stderr, err.Error())
	}
	results := make([]plan.Result, 0, len(params))
	for _, p := range params {
		r, err := plan.Compute(p)
		if err != nil {
			return planCommand.usageError(stderr, err.Error())
		}
		results = append(results, r)
	}
	if len(results) == 1 {
		err = plan.Write(stdout, results[0])
	} else {
		err = plan.WriteTable(stdout, results)
	}
	if err != nil {
		fmt.Fprintf(stderr, "rkms plan: %v\n", err)
		return 1
	}
	return 0
}

// maxPlanRows bounds the combinations of one table.
const maxPlanRows = 100

// planParams turns the flags (and the config file they name) into one Params per row.
func planParams(f planFlags, set map[string]bool) ([]plan.Params, error) {
	if f.tenants == "" || f.replicas == "" {
		return nil, errors.New("--tenants and --replicas are required")
	}
	tenants, err := intList("--tenants", f.tenants)
	if err != nil {
		return nil, err
	}
	replicas, err := intList("--replicas", f.replicas)
	if err != nil {
		return nil, err
	}
	if len(tenants) != len(replicas) {
		return nil, fmt.Errorf("--tenants has %d values, --replicas %d: they are paired", len(tenants), len(replicas))
	}
	dist, err := plan.ParseDist(f.dist)
	if err != nil {
		return nil, fmt.Errorf("--dist: %w", err)
	}
	base := plan.Params{TTL: f.ttl, MaxKeys: f.maxKeys, BranchKeys: f.branchKeys, WrappedTTL: f.wrappedTTL,
		WrappedMaxKeys: f.wrappedMaxKeys, Rate: f.rate, Dist: dist, Regions: f.regions, KMSQuota: f.kmsQuota}
	fileMode := ""
	if f.config != "" {
		if fileMode, err = planFromConfig(f.config, &base, set); err != nil {
			return nil, err
		}
	}
	modeList := f.modes
	if !set["mode"] && fileMode != "" {
		modeList = fileMode
	}
	var modes []plan.Mode
	for _, m := range strings.Split(modeList, ",") {
		modes = append(modes, plan.Mode(strings.TrimSpace(m)))
	}
	if len(tenants)*len(modes) > maxPlanRows {
		return nil, fmt.Errorf("%d combinations: at most %d", len(tenants)*len(modes), maxPlanRows)
	}
	var out []plan.Params
	for _, m := range modes {
		for i := range tenants {
			p := base
			p.Mode, p.Tenants, p.Replicas = m, tenants[i], replicas[i]
			out = append(out, p)
		}
	}
	return out, nil
}

func intList(name, s string) ([]int, error) {
	parts := strings.Split(s, ",")
	if len(parts) > maxPlanRows {
		return nil, fmt.Errorf("%s: %d values, at most %d", name, len(parts), maxPlanRows)
	}
	out := make([]int, 0, len(parts))
	for _, p := range parts {
		n, err := strconv.Atoi(strings.ReplaceAll(strings.TrimSpace(p), "_", ""))
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not an integer", name, p)
		}
		out = append(out, n)
	}
	return out, nil
}

// planContractKeys are the keys of issue 19's hierarchical mode, read from the file loosely:
// the planner takes them whether or not this build's config loader knows them.
type planContractKeys struct {
	KMS struct {
		Mode         string `yaml:"mode"`
		Hierarchical struct {
			BranchKeys int `yaml:"branch_keys"`
		} `yaml:"hierarchical"`
	} `yaml:"kms"`
	Cache struct {
		WrappedTTL     string `yaml:"wrapped_ttl"`
		WrappedMaxKeys int    `yaml:"wrapped_max_keys"`
	} `yaml:"cache"`
}

// planFromConfig lays the settings of the rkms configuration at path under the flags that were
// set, and returns the file's kms.mode ("" when absent).
func planFromConfig(path string, p *plan.Params, set map[string]bool) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--config: %w", err)
	}
	var extra planContractKeys
	if err := yaml.Unmarshal(data, &extra); err != nil {
		return "", fmt.Errorf("--config %s: %w", path, err)
	}
	cfg, err := config.Parse(data)
	if err != nil {
		// A loader that does not know the hierarchical keys yet: read the rest without them.
		stripped, serr := stripContractKeys(data)
		if serr != nil {
			return "", fmt.Errorf("--config %s: %w", path, err)
		}
		if cfg, serr = config.Parse(stripped); serr != nil {
			return "", fmt.Errorf("--config %s: %w", path, err)
		}
	}
	if !set["ttl"] {
		p.TTL = cfg.Cache.TTL
	}
	if !set["cache-max-keys"] && cfg.Cache.MaxKeys != 0 {
		p.MaxKeys = cfg.Cache.MaxKeys
	}
	if !set["regions"] {
		p.Regions = len(cfg.KMS.Regions)
	}
	if !set["branch-keys"] && extra.KMS.Hierarchical.BranchKeys != 0 {
		p.BranchKeys = extra.KMS.Hierarchical.BranchKeys
	}
	if !set["wrapped-ttl"] && extra.Cache.WrappedTTL != "" {
		if p.WrappedTTL, err = time.ParseDuration(extra.Cache.WrappedTTL); err != nil {
			return "", fmt.Errorf("--config %s: cache.wrapped_ttl: %w", path, err)
		}
	}
	if !set["wrapped-max-keys"] && extra.Cache.WrappedMaxKeys != 0 {
		p.WrappedMaxKeys = extra.Cache.WrappedMaxKeys
	}
	return extra.KMS.Mode, nil
}

// stripContractKeys returns the YAML document data without the keys of [planContractKeys].
func stripContractKeys(data []byte) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) != 1 {
		return nil, errors.New("not one YAML document")
	}
	drop := map[string][]string{"kms": {"mode", "hierarchical"}, "cache": {"wrapped_ttl", "wrapped_max_keys"}}
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		keys, ok := drop[root.Content[i].Value]
		if !ok || root.Content[i+1].Kind != yaml.MappingNode {
			continue
		}
		m := root.Content[i+1]
		var kept []*yaml.Node
		for j := 0; j+1 < len(m.Content); j += 2 {
			if !slices.Contains(keys, m.Content[j].Value) {
				kept = append(kept, m.Content[j], m.Content[j+1])
			}
		}
		m.Content = kept
	}
	return yaml.Marshal(&doc)
}
