package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDefaultIsValid(t *testing.T) {
	if ps := Check(Default(), nil); len(ps) > 0 {
		t.Fatalf("defaults invalid: %v", ps)
	}
}

func TestLoadFull(t *testing.T) {
	cfg, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.KMS.Provider != "aws" || len(cfg.KMS.Regions) != 3 || cfg.KMS.Timeout != 500*time.Millisecond ||
		cfg.Store.DynamoDB.Endpoint != "http://127.0.0.1:18000" || !cfg.Store.DynamoDB.CreateTable ||
		cfg.Cache.TTL != 5*time.Minute || cfg.Admin.GRPCListen != "127.0.0.1:8081" || len(cfg.Policies) != 1 || cfg.ExtProc.KeyTimeout != 1500*time.Millisecond ||
		cfg.Cache.MaxStale != time.Hour || cfg.Cache.MaxDerived != 20000 || !cfg.Cache.Warmup.Enabled || cfg.Cache.Warmup.MaxKeys != 10000 ||
		cfg.KMS.BreakerCooldown != 10*time.Second || cfg.KMS.RepairInterval != time.Minute {
		t.Fatalf("unexpected config: %+v", cfg)
	}
}

// TestCreationControlKeys: defaults, an unlimited rate, the negative cache off.
func TestCreationControlKeys(t *testing.T) {
	for _, tc := range []struct {
		yaml        string
		rate        float64
		burst       int
		negativeTTL time.Duration
	}{
		{"", 10, 20, 5 * time.Second},
		{"kms: {create_rate: 0.5, create_burst: 3}\ncache: {negative_ttl: 30s}\n", 0.5, 3, 30 * time.Second},
		{"kms: {create_rate: -1}\ncache: {negative_ttl: -1s}\n", -1, 20, -time.Second},
		{"cache: {negative_ttl: 0s}\n", 10, 20, 0}, // 0: the keyring's default
	} {
		cfg, err := Parse([]byte(tc.yaml))
		if err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		if cfg.KMS.CreateRate != tc.rate || cfg.KMS.CreateBurst != tc.burst || cfg.Cache.NegativeTTL != tc.negativeTTL ||
			cfg.Cache.NegativeMaxKeys != 10000 {
			t.Errorf("%q: rate %v burst %d negative ttl %s max %d", tc.yaml, cfg.KMS.CreateRate, cfg.KMS.CreateBurst,
				cfg.Cache.NegativeTTL, cfg.Cache.NegativeMaxKeys)
		}
	}
}

// TestExtProcLimits: the stream deadlines, shares and memory budget are read from their keys;
// shares and budget default to 0 (derived at start).
func TestExtProcLimits(t *testing.T) {
	def := Default().ExtProc
	if def.StreamTimeout != 60*time.Second || def.IdleTimeout != 30*time.Second || def.FirstMessageTimeout != 5*time.Second ||
		def.MaxStreamsPerClient != 0 || def.MaxStreamsPerTenant != 0 || def.MemoryBudgetBytes != 0 {
		t.Errorf("defaults: %+v", def)
	}
	cfg, err := Parse([]byte("extproc:\n  stream_timeout: 20s\n  idle_timeout: 10s\n  first_message_timeout: 1s\n" +
		"  max_streams_per_client: 100\n  max_streams_per_tenant: 50\n  memory_budget_bytes: 134217728\n"))
	if err != nil {
		t.Fatal(err)
	}
	e := cfg.ExtProc
	if e.StreamTimeout != 20*time.Second || e.IdleTimeout != 10*time.Second || e.FirstMessageTimeout != time.Second ||
		e.MaxStreamsPerClient != 100 || e.MaxStreamsPerTenant != 50 || e.MemoryBudgetBytes != 128<<20 {
		t.Errorf("parsed: %+v", e)
	}
}

func TestEmptyFileIsDefaults(t *testing.T) {
	cfg, err := Parse([]byte("# nothing\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Admin.Listen != "127.0.0.1:8080" || cfg.Store.Type != "embedded" {
		t.Fatalf("not the defaults: %+v", cfg)
	}
}

func TestOverlayKeepsDefaults(t *testing.T) {
	cfg, err := Parse([]byte("admin: {listen: 127.0.0.1:9999}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Admin.Listen != "127.0.0.1:9999" || cfg.Admin.TokenFile != "rkms-data/admin.token" || cfg.ExtProc.Listen != "127.0.0.1:50051" {
		t.Fatalf("overlay lost defaults: %+v", cfg.Admin)
	}
}

func TestProblemsHaveLines(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // each must appear among the problems
	}{
		{"unknown key", "admin:\n  listen: 127.0.0.1:8080\n  tokn_file: x\n", []string{"line 3:", "tokn_file"}},
		{"wrong type", "cache:\n  max_keys: many\n", []string{"line 2:"}},
		{"bad duration", "kms:\n  timeout: soon\n", []string{"line 2:"}},
		{"bad grpc listen", "admin:\n  grpc_listen: nowhere\n", []string{"line 2: admin.grpc_listen: must be host:port"}},
		{"bad provider", "kms:\n  provider: gcp\n", []string{"line 2: kms.provider: must be aws or local"}},
		{"negative max stale", "cache:\n  max_stale: -1s\n", []string{"line 2: cache.max_stale: must not be negative"}},
		{"zero max derived", "cache:\n  max_derived: 0\n", []string{"line 2: cache.max_derived: must be positive"}},
		{"warmup without timeout", "cache:\n  warmup:\n    enabled: true\n    timeout: 0s\n", []string{"line 4: cache.warmup.timeout: must be a positive"}},
		{"zero repair interval", "kms:\n  repair_interval: 0s\n", []string{"line 2: kms.repair_interval: must be a positive"}},
		{"alias key", "kms:\n  provider: aws\n  regions:\n    - name: us-east-1\n      key_id: alias/rkms\n", []string{"line 5: kms.regions[0].key_id: aliases"}},
		{"missing key id", "kms:\n  provider: aws\n  regions:\n    - name: us-east-1\n", []string{"line 4: kms.regions[0].key_id"}},
		{"duplicate region", "kms:\n  regions:\n    - name: a\n    - name: a\n", []string{"line 4: kms.regions[1].name: duplicate"}},
		{"min regions", "kms:\n  min_regions: 7\n", []string{"line 2: kms.min_regions"}},
		{"bad listen", "extproc:\n  listen: nowhere\n", []string{"line 2: extproc.listen"}},
		{"store type", "store:\n  type: redis\n", []string{"line 2: store.type"}},
		{"dynamodb needs table and region", "store:\n  type: dynamodb\n  dynamodb:\n    table: \"\"\n", []string{"store.dynamodb.table", "store.dynamodb.region"}},
		{"several at once", "log: {level: loud}\ncache: {ttl: 0s}\n", []string{"line 1: log.level", "line 2: cache.ttl"}},
		{"zero create rate", "kms:\n  create_rate: 0\n", []string{"line 2: kms.create_rate: must be positive"}},
		{"zero create burst", "kms:\n  create_burst: 0\n", []string{"line 2: kms.create_burst: must be positive"}},
		{"negative create burst", "kms:\n  create_burst: -1\n", []string{"line 2: kms.create_burst: must be positive"}},
		{"negative negative max keys", "cache:\n  negative_max_keys: -1\n", []string{"line 2: cache.negative_max_keys: must be positive"}},
		{"max age within the cache window", "keyring:\n  rotation:\n    max_age: 2h\n", []string{"line 3: keyring.rotation.max_age: 2h0m0s must be at least twice the cache window"}},
		{"negative max age", "keyring:\n  rotation:\n    max_age: -1h\n", []string{"line 3: keyring.rotation.max_age: must not be negative"}},
		{"tiny max seals", "keyring:\n  rotation:\n    max_seals: 10\n", []string{"line 3: keyring.rotation.max_seals: must be 0 (off) or at least 1000"}},
		{"negative retire grace", "keyring:\n  rotation:\n    retire_grace: -1s\n", []string{"line 3: keyring.rotation.retire_grace: must not be negative"}},
		{"negative maintenance interval", "keyring:\n  rotation:\n    maintenance_interval: -1s\n", []string{"line 3: keyring.rotation.maintenance_interval"}},
		{"negative maintenance rate", "keyring:\n  rotation:\n    maintenance_rate: -5\n", []string{"line 3: keyring.rotation.maintenance_rate"}},
		{"infinite maintenance rate", "keyring:\n  rotation:\n    maintenance_rate: .inf\n", []string{"line 3: keyring.rotation.maintenance_rate"}},
		{"syntax", "admin: [\n", []string{"line"}},
		{"client share over the stream limit", "extproc:\n  max_concurrent_streams: 8\n  max_streams_per_client: 9\n",
			[]string{"line 3: extproc.max_streams_per_client: must be between 0"}},
		{"negative tenant share", "extproc:\n  max_streams_per_tenant: -1\n", []string{"line 2: extproc.max_streams_per_tenant"}},
		{"zero idle timeout", "extproc:\n  idle_timeout: 0s\n", []string{"line 2: extproc.idle_timeout: must be a positive"}},
		{"negative stream timeout", "extproc:\n  stream_timeout: -1s\n", []string{"line 2: extproc.stream_timeout"}},
		{"zero first message timeout", "extproc:\n  first_message_timeout: 0s\n", []string{"line 2: extproc.first_message_timeout"}},
		{"budget under one body", "extproc:\n  max_body_bytes: 1048576\n  memory_budget_bytes: 1048576\n",
			[]string{"line 3: extproc.memory_budget_bytes: must be 0 (from the container memory limit) or hold one largest body: at least 5242880"}},
		{"negative budget", "extproc:\n  memory_budget_bytes: -1\n", []string{"line 2: extproc.memory_budget_bytes"}},
		{"slow trace without dir", "extproc:\n  slow_trace: {threshold: 50ms}\n", []string{"line 2: extproc.slow_trace: dir must be set"}},
		{"slow trace without threshold", "extproc:\n  slow_trace:\n    dir: /nonexistent-rkms-dir\n    max_files: 5000\n",
			[]string{"line 2: extproc.slow_trace: threshold must be a positive", "max_files must be between", "dir: stat /nonexistent-rkms-dir"}},
		{"blind index", "policies:\n  - name: p\n    key_id: k\n    request:\n      encrypt:\n        - {path: $.ssn, index: {name: ssn_idx, bits: 12}}\n" +
			"        - {path: \"$.a[*]\", label: a, index: {name: a_idx}}\n      index_query: [{param: ssn, index: nope}]\n",
			[]string{"line 6: policies[0].request.encrypt[0].index.bits: 12 is not a multiple of 8",
				"line 7: policies[0].request.encrypt[1].index: selector $.a[*] must end in a member name"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			var ps Problems
			if !errors.As(err, &ps) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("want Problems, got %v", err)
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("problems %q do not contain %q", msg, w)
				}
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("kms: {provider: aws}\n"))
	f.Add([]byte("admin: [\n"))
	f.Add([]byte("policies:\n  - name: x\n    key_id: a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err == nil && len(Check(cfg, nil)) > 0 {
			t.Fatalf("Parse accepted a config that Check rejects")
		}
	})
}

func TestPolicyProblemsHaveLines(t *testing.T) {
	y := `policies:
  - name: ok
    key_id: "t-{header:x-tenant}"
    request: {encrypt: ["$.ssn"]}
  - name: broken
    key_id: "t-{header:x-tenant}"
    request: {encrypt: ["$.ssn[", "$.a"]}
  - name: ok
    key_id: "x"
`
	_, err := Parse([]byte(y))
	if err == nil {
		t.Fatal("accepted a broken policy")
	}
	msg := err.Error()
	for _, w := range []string{"line 7: policies[1].request.encrypt[0]: selector \"$.ssn[\"", "line 8: policies[2].name: duplicate policy name"} {
		if !strings.Contains(msg, w) {
			t.Errorf("%q does not contain %q", msg, w)
		}
	}
}

func TestGRPCListenCanBeDisabled(t *testing.T) {
	cfg, err := Parse([]byte("admin: {grpc_listen: \"\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Admin.GRPCListen != "" || Default().Admin.GRPCListen != "127.0.0.1:8081" {
		t.Fatalf("grpc_listen %q", cfg.Admin.GRPCListen)
	}
}

// TestExtProcListenNeedsMTLS: ext_proc decrypts for whoever connects, so rkms refuses a
// non-loopback listener without mutual TLS unless told to accept the risk.
func TestExtProcListenNeedsMTLS(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		ok   bool
	}{
		{"extproc: {listen: 127.0.0.1:50051}", true},
		{"extproc: {listen: \"[::1]:50051\"}", true},
		{"extproc: {listen: localhost:50051}", true},
		{"extproc: {listen: 0.0.0.0:50051}", false},
		{"extproc: {listen: \":50051\"}", false},
		{"extproc: {listen: 10.0.0.5:50051}", false},
		{"extproc: {listen: 0.0.0.0:50051, insecure: true}", true},
	} {
		_, err := Parse([]byte(tc.yaml))
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok %v", tc.yaml, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "mutual TLS") {
			t.Errorf("%s: %v does not say what to set", tc.yaml, err)
		}
	}
}

// TestParseKeepsCompiledPolicies: the policies compiled while checking the file are the ones the
// server gets, so a process compiles them once.
func TestParseKeepsCompiledPolicies(t *testing.T) {
	cfg, err := Parse([]byte("policies:\n  - name: p\n    key_id: \"t-{header:x-tenant}\"\n    request: {encrypt: [\"$.ssn\"]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := cfg.PolicySet()
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := cfg.PolicySet(); a != b || cfg.compiled != a || len(a.Policies()) != 1 {
		t.Fatalf("PolicySet compiled again or lost the policy: %p %p", a, b)
	}
	if set, err := Default().PolicySet(); err != nil || len(set.Policies()) != 0 {
		t.Fatalf("defaults: %v, %v", set, err)
	}
}
