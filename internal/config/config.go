package config

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rkms/rkms/extproc/limits"
	"github.com/rkms/rkms/extproc/policy"
	"github.com/rkms/rkms/keyring"
)

// Config is the whole rkms configuration. Field docs name the YAML keys.
type Config struct {
	// DataDir (data_dir) holds local state of the embedded defaults: the embedded store file, the
	// local software KMS master keys and the generated admin token.
	DataDir  string          `yaml:"data_dir"`
	Log      Log             `yaml:"log"`
	Admin    Admin           `yaml:"admin"`
	ExtProc  ExtProc         `yaml:"extproc"`
	KMS      KMS             `yaml:"kms"`
	Store    Store           `yaml:"store"`
	Cache    Cache           `yaml:"cache"`
	Keyring  Keyring         `yaml:"keyring"`
	Policies []policy.Config `yaml:"policies"`
	// Envoy configures `rkms envoy-config` (envoy.go); rkms serve ignores it.
	Envoy Envoy `yaml:"envoy"`

	// compiled is Policies as compiled by the check in Parse; nil for a Config that did not come
	// from Parse (see PolicySet).
	compiled *policy.Set
}

// PolicySet returns the compiled policies. For a Config from [Load] or [Parse] it is the set
// compiled while checking the file, so a process compiles its policies once; otherwise (the
// [Default] config, or one built in code) Policies are compiled now. Change Policies only before
// Parse: the set is not compiled again.
func (c *Config) PolicySet() (*policy.Set, error) {
	if c.compiled != nil {
		return c.compiled, nil
	}
	return policy.Compile(c.Policies)
}

// Log configures logging (log/slog).
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // json | text
}

// Admin configures the admin HTTP API (key API, health and readiness).
type Admin struct {
	Listen string `yaml:"listen"`
	// GRPCListen is the address of the gRPC key API (rkms.v1.KeyService), which takes the same
	// token. Empty disables it.
	GRPCListen string `yaml:"grpc_listen"`
	// TokenFile holds the bearer token that /key calls need. RKMS_ADMIN_TOKEN overrides it. If
	// neither exists, a random token is generated into TokenFile (mode 0600) at start.
	TokenFile string `yaml:"token_file"`
	// TLS, when set, serves the admin HTTP API and the gRPC key API over TLS (mutual TLS with
	// client_ca_file).
	TLS TLS `yaml:"tls"`
	// Credentials, when set, replace the single token: named credentials, each with its own
	// token (or client certificate subject), allowed operations and optional key id prefixes
	// (see credentials.go).
	Credentials []Credential `yaml:"credentials"`
}

// ExtProc configures the Envoy external processor (gRPC).
type ExtProc struct {
	Listen string `yaml:"listen"`
	// MaxBodyBytes is the largest body processed; larger ones are refused with 413.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// KeyTimeout bounds a key fetch (store read + KMS unwrap, or creation) for one message. Keep it
	// below Envoy's ext_proc message_timeout.
	KeyTimeout time.Duration `yaml:"key_timeout"`
	// MaxFields is the most values one body may have selected by its policy's fields; more are
	// refused (413 on requests, 502 on responses).
	MaxFields int `yaml:"max_fields"`
	// MaxConcurrentStreams bounds the ext_proc streams (HTTP requests in flight) per connection
	// and in the whole server; streams beyond it are refused (Envoy answers status_on_error).
	MaxConcurrentStreams int `yaml:"max_concurrent_streams"`
	// MaxStreamsPerClient bounds the streams of one client (Envoy's source.address attribute,
	// port stripped, from an authenticated peer; else the ext_proc peer's IP); more are answered
	// 429 with retry-after. 0 means max_concurrent_streams/4.
	MaxStreamsPerClient int `yaml:"max_streams_per_client"`
	// MaxStreamsPerTenant bounds the streams of one tenant (computed key id); more are answered
	// 429 with retry-after. 0 means max_concurrent_streams/4.
	MaxStreamsPerTenant int `yaml:"max_streams_per_tenant"`
	// StreamTimeout bounds a stream's life, IdleTimeout the wait for each next message,
	// FirstMessageTimeout the wait for a new stream's first message; past one the stream ends
	// with gRPC DEADLINE_EXCEEDED (Envoy answers status_on_error).
	StreamTimeout       time.Duration `yaml:"stream_timeout"`
	IdleTimeout         time.Duration `yaml:"idle_timeout"`
	FirstMessageTimeout time.Duration `yaml:"first_message_timeout"`
	// MemoryBudgetBytes bounds the body bytes held across all streams (a body costs 5 times its
	// size); a body it cannot hold is answered 503 with retry-after. 0 means half the container
	// memory limit (cgroup), or 256 MiB when none is known.
	MemoryBudgetBytes int64 `yaml:"memory_budget_bytes"`
	// TLS, when set, serves ext_proc over TLS (mutual TLS with client_ca_file: Envoy then needs
	// a client certificate on its rkms cluster).
	TLS TLS `yaml:"tls"`
	// Insecure accepts a non-loopback Listen without mutual TLS. ext_proc decrypts for whoever
	// connects, so without it rkms refuses to start on such an address.
	Insecure bool `yaml:"insecure"`
	// TrustRequestID uses Envoy's x-request-id as the request id in logs and audit records. Set
	// it only when Envoy generates that id for every request (envoy/README.md, "Request ids");
	// otherwise rkms makes its own and logs the client's as client_request_id.
	TrustRequestID bool `yaml:"trust_request_id"`
	// MaxCompressionRatio bounds a compressed body's decoded size per encoded byte (besides
	// max_body_bytes, which bounds the decoded size); over it: 413 on requests, 502 on responses.
	MaxCompressionRatio int `yaml:"max_compression_ratio"`
	// SlowTrace captures a Go execution trace when a stream takes longer than its threshold
	// (an operator's tool for tail latency; off when threshold is 0).
	SlowTrace SlowTrace `yaml:"slow_trace"`
}

// SlowTrace configures the slow-stream trace (extproc.SlowTraceOptions): with a threshold, a
// stream longer than it writes the last seconds of the Go execution trace to a file in Dir, at
// most one file per MinInterval and MaxFiles files in Dir.
type SlowTrace struct {
	Threshold   time.Duration `yaml:"threshold"` // 0: off
	Dir         string        `yaml:"dir"`
	MaxFiles    int           `yaml:"max_files"`    // 0: 10
	MinInterval time.Duration `yaml:"min_interval"` // 0: 1m
}

// On reports whether the slow-stream trace is configured.
func (t SlowTrace) On() bool { return t.Threshold != 0 || t.Dir != "" }

// KMS configures the regions that wrap data keys.
type KMS struct {
	Provider string `yaml:"provider"` // aws | local
	// MinRegions is how many wrapped copies a new key needs; 0 means a majority of Regions.
	MinRegions int           `yaml:"min_regions"`
	Timeout    time.Duration `yaml:"timeout"` // per KMS call
	Regions    []Region      `yaml:"regions"`
	// BreakerThreshold consecutive unavailability failures open a region's circuit breaker;
	// after BreakerCooldown one trial call may close it again (and start a repair pass).
	BreakerThreshold int           `yaml:"breaker_threshold"`
	BreakerCooldown  time.Duration `yaml:"breaker_cooldown"`
	// RepairInterval is how often keys missing a region's wrapped copy are retried.
	RepairInterval time.Duration `yaml:"repair_interval"`
	// CreateRate is how many new keys per second one replica may create (a token bucket of
	// CreateBurst); a request that would create one more gets 429 with retry-after. Opening
	// existing keys is never limited. Negative: unlimited. Policies whose keys must never be
	// created by a request use `create: admin_only` instead.
	CreateRate float64 `yaml:"create_rate"`
	// CreateBurst is how many keys a replica may create at once after a quiet period.
	CreateBurst int `yaml:"create_burst"`
	// Mode is how new data keys are wrapped: direct (each under every region) or hierarchical
	// (locally under a branch key, itself wrapped under every region). Reads do not depend on
	// it: switching needs no migration.
	Mode         string       `yaml:"mode"`
	Hierarchical Hierarchical `yaml:"hierarchical"`
	// Tenants gives key ids their own KMS keys (bring your own key), whatever Mode says.
	Tenants []TenantKMS `yaml:"tenants"`
}

// Hierarchical configures hierarchical mode (keyring.Hierarchical).
type Hierarchical struct {
	BranchKeys  int           `yaml:"branch_keys"`  // tenants map to stable_hash(id) mod branch_keys
	RotateEvery time.Duration `yaml:"rotate_every"` // branch key rotation; 0 = never
	RetireGrace time.Duration `yaml:"retire_grace"` // an old branch version stops opening this long after its successor; 0 = never
	RewrapRate  float64       `yaml:"rewrap_rate"`  // records per second of the background re-wrap; 0 = unpaced
}

// TenantKMS is one tenant's own KMS keys: key ids (exact, or by prefix) wrapped directly under
// its regions, never under the shared ones or a branch key.
type TenantKMS struct {
	IDs        []string       `yaml:"ids"`
	IDPrefixes []string       `yaml:"id_prefixes"`
	MinRegions int            `yaml:"min_regions"` // 0: a majority of regions
	Regions    []TenantRegion `yaml:"regions"`
}

// TenantRegion is one of a tenant's KMS keys. Name must be unique among every region (shared
// and tenants'): records name their copies by it.
type TenantRegion struct {
	Name      string `yaml:"name"`
	AWSRegion string `yaml:"aws_region"` // aws: the key's region (default: name)
	KeyID     string `yaml:"key_id"`     // aws: key ARN; local: unused
	Endpoint  string `yaml:"endpoint"`   // aws: optional endpoint override
}

// Region is one KMS region.
type Region struct {
	Name     string `yaml:"name"`
	KeyID    string `yaml:"key_id"`   // aws: key ARN (preferred) or key id; local: unused
	Endpoint string `yaml:"endpoint"` // aws: optional endpoint override (e.g. local-kms)
}

// Store configures where wrapped keys are kept.
type Store struct {
	Type     string   `yaml:"type"` // dynamodb | embedded | memory
	DynamoDB DynamoDB `yaml:"dynamodb"`
	Embedded Embedded `yaml:"embedded"`
}

// DynamoDB configures the DynamoDB store.
type DynamoDB struct {
	Table  string `yaml:"table"`
	Region string `yaml:"region"`
	// Endpoint overrides the endpoint of Region (e.g. dynalite). Endpoints lists the regional
	// endpoints of a global table's replicas, write region first; reads fall back along it.
	Endpoint    string        `yaml:"endpoint"`
	Endpoints   []string      `yaml:"endpoints"`
	CreateTable bool          `yaml:"create_table"`
	Timeout     time.Duration `yaml:"timeout"` // per store call
}

// Embedded configures the embedded single-file store.
type Embedded struct {
	Path string `yaml:"path"`
}

// Cache configures the plaintext data-key cache.
type Cache struct {
	TTL     time.Duration `yaml:"ttl"`
	MaxKeys int           `yaml:"max_keys"`
	// MaxDerived bounds how many cached keys keep their expanded cipher state (about 1 KiB
	// each) at once; the others rebuild it on use (about 10 µs). See keyring.Options.
	MaxDerived int `yaml:"max_derived"`
	// MaxStale is how long past TTL a cached key keeps serving while its refresh fails because
	// every KMS region or the store is unreachable (stale-if-error). 0 disables.
	MaxStale time.Duration `yaml:"max_stale"`
	// NegativeTTL is how long a replica remembers that a key id has no key (looked up for a
	// create: admin_only policy), so that a flood of unknown ids costs one store read per id
	// and TTL. Creating, rotating or deleting the key on the replica forgets it at once; a key
	// created through another replica is seen after at most this long. 0: the default (5s);
	// negative disables.
	NegativeTTL time.Duration `yaml:"negative_ttl"`
	// NegativeMaxKeys bounds the ids remembered as absent (least recently used evicted first).
	// 0: the default (10000).
	NegativeMaxKeys int    `yaml:"negative_max_keys"`
	Warmup          Warmup `yaml:"warmup"`
	// WrappedTTL and WrappedMaxKeys bound the cache of branch-wrapped records (hierarchical
	// mode): a plaintext miss then costs no store read. It is also how long another replica's
	// rotation or deletion of such a key may go unseen here.
	WrappedTTL     time.Duration `yaml:"wrapped_ttl"`
	WrappedMaxKeys int           `yaml:"wrapped_max_keys"`
}

// Keyring configures the key lifecycle beyond the cache (see package keyring).
type Keyring struct {
	Rotation Rotation `yaml:"rotation"`
}

// Rotation is the version lifecycle policy: automatic rotation by age and by seal count, and
// the destruction of retired versions. 0 disables each.
type Rotation struct {
	// MaxAge rotates a key's current version when it is this old, less the longer of a tenth of
	// it and the cache window (cache.ttl + up to 1s + cache.max_stale), so that no replica seals
	// with it past MaxAge and a failed rotation is retried for long before seals stop.
	MaxAge time.Duration `yaml:"max_age"`
	// MaxSeals rotates a key's current version before all replicas together sealed this many
	// values with it (reserved in blocks; never more, possibly up to a few blocks fewer).
	MaxSeals uint64 `yaml:"max_seals"`
	// RetireGrace is how long a retired version (below the key's min decrypt version) keeps its
	// wrapped copies before they are deleted for good. 0: never deleted automatically.
	RetireGrace time.Duration `yaml:"retire_grace"`
	// MaintenanceInterval is how often each replica checks every key for a due rotation or
	// destruction (keys read in between are checked when read). 0 disables the periodic pass.
	MaintenanceInterval time.Duration `yaml:"maintenance_interval"`
	// MaintenanceRate bounds the periodic pass to this many keys (store reads) per second on
	// each replica. 0: unpaced.
	MaintenanceRate float64 `yaml:"maintenance_rate"`
}

// Warmup configures the start-up cache warm-up: a running replica saves the ids (never the
// keys) of its most recently used keys to File every SaveInterval and when it stops; at start it
// unwraps those keys before /readyz and the gRPC health check report it ready.
type Warmup struct {
	Enabled bool `yaml:"enabled"`
	// MaxKeys bounds the ids saved and warmed.
	MaxKeys int `yaml:"max_keys"`
	// Timeout bounds the warm-up: the replica turns ready when it is done or this passes.
	Timeout      time.Duration `yaml:"timeout"`
	SaveInterval time.Duration `yaml:"save_interval"`
	// File holds the ids, one per line (mode 0600); default DATA_DIR/recent-key-ids.
	File string `yaml:"file"`
}

// Defaults that belong to the service rather than to a library: where it keeps its data and
// listens, what it runs on without a file, and the values it deliberately sets apart from the
// defaults of the packages it configures. Every other default is the owning package's
// Default* constant (see [Default]).
const (
	DefaultDataDir       = "rkms-data"
	DefaultAdminListen   = "127.0.0.1:8080"
	DefaultKeyAPIListen  = "127.0.0.1:8081"
	DefaultExtProcListen = "127.0.0.1:50051"
	DefaultDynamoDBTable = "rkms_keys"
	DefaultLocalRegions  = 3 // local-1, local-2, local-3: a majority survives one lost region

	// DefaultKMSTimeout bounds one KMS call, shorter than awskms.DefaultTimeout: a key fetch
	// that falls back across regions must fit in extproc.key_timeout.
	DefaultKMSTimeout = 500 * time.Millisecond
	// DefaultDynamoDBTimeout bounds one store call, shorter than dynamodb.DefaultTimeout for
	// the same reason.
	DefaultDynamoDBTimeout = time.Second
	// DefaultMaxStale turns stale-if-error on (keyring.Options.MaxStale is off by default):
	// cached keys keep serving for an hour while every region or the store is down.
	DefaultMaxStale = time.Hour

	// The cache warm-up is a feature of the server (internal/app) configured only here.
	DefaultWarmupMaxKeys      = 10000
	DefaultWarmupTimeout      = 30 * time.Second
	DefaultWarmupSaveInterval = time.Minute

	// Version lifecycle: keyring.Options leaves rotation off; the service turns it on.
	// DefaultMaxAge is 90 days. DefaultMaxSeals is 2^30: AES-GCM with random 96-bit nonces
	// keeps the chance of a nonce collision below 2^-32 up to 2^32 messages per key (NIST SP
	// 800-38D); 2^30 leaves a factor of 4 under that bound, so that seals counted early (blocks
	// reserved by replicas) and deterministic mode's derived nonces never approach it.
	DefaultMaxAge   = 90 * 24 * time.Hour
	DefaultMaxSeals = 1 << 30
	// MinMaxSeals is the smallest max_seals accepted: one reservation block (below it every
	// seal would be a store write).
	MinMaxSeals                = 1000
	DefaultRetireGrace         = keyring.DefaultRetireGrace
	DefaultMaintenanceInterval = keyring.DefaultMaintenanceInterval
	DefaultMaintenanceRate     = keyring.DefaultMaintenanceRate
)

// Default returns the defaults a configuration file is laid over: everything local, nothing
// needs AWS or Envoy. Each value is read from the package that owns it (keyring, extproc) or from
// the constants above; the paths under data_dir are derived from it ([Config.LocalKMSDir] and
// the files named in [dataFiles]).
func Default() *Config {
	c := defaults()
	c.fillDataPaths()
	return c
}

// Dev returns what `rkms serve` runs on without a file: [Default], logging text for the person at
// the terminal rather than JSON for a log pipeline.
func Dev() *Config {
	c := Default()
	c.Log.Format = "text"
	return c
}

// defaults is [Default] before the paths under data_dir are filled in: [Parse] decodes a file over
// it, so that a data_dir set in the file moves every path the file leaves unset.
func defaults() *Config {
	regions := make([]Region, DefaultLocalRegions)
	for i := range regions {
		regions[i].Name = fmt.Sprintf("local-%d", i+1)
	}
	return &Config{
		DataDir: DefaultDataDir,
		Log:     Log{Level: "info", Format: "json"},
		Admin:   Admin{Listen: DefaultAdminListen, GRPCListen: DefaultKeyAPIListen},
		ExtProc: ExtProc{
			Listen:               DefaultExtProcListen,
			MaxBodyBytes:         limits.DefaultMaxBodyBytes,
			KeyTimeout:           limits.DefaultKeyTimeout,
			MaxFields:            limits.DefaultMaxFields,
			MaxConcurrentStreams: limits.DefaultMaxConcurrentStreams,
			StreamTimeout:        limits.DefaultStreamTimeout,
			IdleTimeout:          limits.DefaultIdleTimeout,
			FirstMessageTimeout:  limits.DefaultFirstMessageTimeout,
			MaxCompressionRatio:  limits.DefaultMaxCompressionRatio,
		},
		KMS: KMS{
			Provider:         "local",
			Timeout:          DefaultKMSTimeout,
			Regions:          regions,
			BreakerThreshold: keyring.DefaultBreakerThreshold,
			BreakerCooldown:  keyring.DefaultBreakerCooldown,
			RepairInterval:   keyring.DefaultRepairInterval,
			CreateRate:       keyring.DefaultCreateRate,
			CreateBurst:      keyring.DefaultCreateBurst,
			Mode:             keyring.ModeDirect,
			Hierarchical: Hierarchical{BranchKeys: keyring.DefaultBranchKeys, RotateEvery: keyring.DefaultBranchRotateEvery,
				RetireGrace: keyring.DefaultBranchRetireGrace, RewrapRate: keyring.DefaultRewrapRate},
			Tenants: []TenantKMS{},
		},
		Store: Store{
			Type:     "embedded",
			DynamoDB: DynamoDB{Table: DefaultDynamoDBTable, Timeout: DefaultDynamoDBTimeout},
		},
		Cache: Cache{
			TTL:             keyring.DefaultCacheTTL,
			MaxKeys:         keyring.DefaultCacheMaxKeys,
			MaxDerived:      keyring.DefaultCacheMaxDerived,
			MaxStale:        DefaultMaxStale,
			NegativeTTL:     keyring.DefaultNegativeTTL,
			NegativeMaxKeys: keyring.DefaultNegativeMaxKeys,
			Warmup:          Warmup{MaxKeys: DefaultWarmupMaxKeys, Timeout: DefaultWarmupTimeout, SaveInterval: DefaultWarmupSaveInterval},
			WrappedTTL:      keyring.DefaultWrappedTTL,
			WrappedMaxKeys:  keyring.DefaultWrappedMaxKeys,
		},
		Keyring: Keyring{Rotation: Rotation{MaxAge: DefaultMaxAge, MaxSeals: DefaultMaxSeals,
			RetireGrace: DefaultRetireGrace, MaintenanceInterval: DefaultMaintenanceInterval,
			MaintenanceRate: DefaultMaintenanceRate}},
		Envoy: defaultEnvoy(),
	}
}

// Problem is one thing wrong with a configuration file.
type Problem struct {
	Line int    // 1-based line in the file; 0 when unknown
	Path string // the key, e.g. kms.regions[1].key_id
	Msg  string
}

func (p Problem) String() string {
	switch {
	case p.Line > 0 && p.Path != "":
		return fmt.Sprintf("line %d: %s: %s", p.Line, p.Path, p.Msg)
	case p.Line > 0:
		return fmt.Sprintf("line %d: %s", p.Line, p.Msg)
	case p.Path != "":
		return fmt.Sprintf("%s: %s", p.Path, p.Msg)
	}
	return p.Msg
}

// Problems is every problem found in a configuration; it is the error [Load] returns.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return fmt.Sprintf("%d configuration problem(s):\n  %s", len(ps), strings.Join(lines, "\n  "))
}

// ErrInvalid is wrapped by every error that [Load] returns for a bad file (not for a missing one).
var ErrInvalid = errors.New("invalid configuration")

func (ps Problems) Unwrap() error { return ErrInvalid }

// Load reads the file at path over the defaults and checks it. A bad file yields [Problems].
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(data)
}

// Parse is [Load] on bytes already read. Every problem is reported at once: the file's shape
// (unknown keys, values of the wrong type: see decode) and then the checks of values, run on
// everything that could be read.
func Parse(data []byte) (*Config, error) {
	var root, doc yaml.Node // root keeps the file as written, for lines; doc is pruned by decode
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, Problems{yamlProblem(err)}
	}
	_ = yaml.Unmarshal(data, &doc) // the same bytes: cannot fail now
	cfg := defaults()
	var ps Problems
	if len(doc.Content) > 0 { // no document: an empty file, all defaults
		ps = decode(doc.Content[0], cfg)
	}
	cfg.fillDataPaths()
	set, checked := check(cfg, &root)
	ps = append(ps, checked.except(ps)...)
	if len(ps) > 0 {
		slices.SortStableFunc(ps, func(a, b Problem) int { return cmp.Compare(lineKey(a), lineKey(b)) })
		return nil, ps
	}
	cfg.compiled = set
	return cfg, nil
}

// lineKey orders problems by line, those without one last.
func lineKey(p Problem) int {
	if p.Line == 0 {
		return math.MaxInt
	}
	return p.Line
}

// except returns the problems of ps whose key has no problem in shape (nor a key under it): a
// value that could not be read keeps its default, which must not be reported as a second problem.
func (ps Problems) except(shape Problems) Problems {
	var out Problems
	for _, p := range ps {
		dup := false
		for _, s := range shape {
			if s.Path != "" && (p.Path == s.Path || strings.HasPrefix(p.Path, s.Path+".") || strings.HasPrefix(p.Path, s.Path+"[")) {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, p)
		}
	}
	return out
}

// Report is the problems one per line, each line ending in a newline.
func (ps Problems) Report() string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString(p.String())
		b.WriteByte('\n')
	}
	return b.String()
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

func yamlProblem(err error) Problem {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return Problem{Line: n, Msg: m[2]}
	}
	return Problem{Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
}

// Check validates cfg and returns every problem. root, the parsed file, is used to give each
// problem its line; it may be nil (for the defaults).
func Check(cfg *Config, root *yaml.Node) Problems {
	_, ps := check(cfg, root)
	return ps
}

// check is [Check] that also returns the compiled policies when there is no problem.
func check(cfg *Config, root *yaml.Node) (*policy.Set, Problems) {
	c := checker{root: root}
	c.check(cfg)
	return c.policySet, c.ps
}

type checker struct {
	root      *yaml.Node
	ps        Problems
	policySet *policy.Set // the compiled policies, when they have no problem
}

func (c *checker) add(path, format string, args ...any) {
	c.ps = append(c.ps, Problem{Line: lineOf(c.root, path), Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (c *checker) check(cfg *Config) {
	if cfg.DataDir == "" {
		c.add("data_dir", "must not be empty")
	}
	switch cfg.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		c.add("log.level", "must be one of debug, info, warn, error (got %q)", cfg.Log.Level)
	}
	switch cfg.Log.Format {
	case "json", "text":
	default:
		c.add("log.format", "must be json or text (got %q)", cfg.Log.Format)
	}
	c.listen("admin.listen", cfg.Admin.Listen)
	if cfg.Admin.GRPCListen != "" {
		c.listen("admin.grpc_listen", cfg.Admin.GRPCListen)
	}
	c.adminCredentials(&cfg.Admin)
	c.tls("admin.tls", cfg.Admin.TLS)
	c.listen("extproc.listen", cfg.ExtProc.Listen)
	c.extprocLimits(&cfg.ExtProc)
	c.tls("extproc.tls", cfg.ExtProc.TLS)
	if host, _, err := net.SplitHostPort(cfg.ExtProc.Listen); err == nil && !isLoopback(host) && !cfg.ExtProc.Insecure &&
		(cfg.ExtProc.TLS.CertFile == "" || cfg.ExtProc.TLS.ClientCAFile == "") {
		c.add("extproc.listen", "%q is not a loopback address: ext_proc decrypts for whoever connects, so it needs mutual TLS "+
			"(extproc.tls with cert_file, key_file and client_ca_file), or extproc.insecure: true to accept that risk", cfg.ExtProc.Listen)
	}
	c.kms(&cfg.KMS)
	c.store(&cfg.Store)
	c.positive("cache.ttl", cfg.Cache.TTL)
	if cfg.Cache.MaxKeys <= 0 {
		c.add("cache.max_keys", "must be positive (got %d)", cfg.Cache.MaxKeys)
	}
	if cfg.Cache.MaxDerived <= 0 {
		c.add("cache.max_derived", "must be positive (got %d)", cfg.Cache.MaxDerived)
	}
	if cfg.Cache.MaxStale < 0 {
		c.add("cache.max_stale", "must not be negative; 0 disables (got %s)", cfg.Cache.MaxStale)
	}
	if cfg.Cache.NegativeMaxKeys < 0 {
		c.add("cache.negative_max_keys", "must be positive, or 0 for the default (got %d)", cfg.Cache.NegativeMaxKeys)
	}
	if w := cfg.Cache.Warmup; w.Enabled {
		if w.MaxKeys <= 0 {
			c.add("cache.warmup.max_keys", "must be positive (got %d)", w.MaxKeys)
		}
		c.positive("cache.warmup.timeout", w.Timeout)
		c.positive("cache.warmup.save_interval", w.SaveInterval)
	}
	c.rotation(cfg)
	c.policies(cfg.Policies)
	c.envoy(&cfg.Envoy, cfg.Policies)
}

// rotation checks keyring.rotation: durations not negative, and a max age that leaves each
// version at least the cache window of use (keyring.CheckMaxAge).
func (c *checker) rotation(cfg *Config) {
	r := cfg.Keyring.Rotation
	if err := keyring.CheckMaxAge(r.MaxAge, keyring.CacheWindow(cfg.Cache.TTL, cfg.Cache.MaxStale)); err != nil {
		c.add("keyring.rotation.max_age", "%v", err)
	}
	if r.MaxSeals > 0 && r.MaxSeals < MinMaxSeals {
		c.add("keyring.rotation.max_seals", "must be 0 (off) or at least %d, one reservation block (got %d)", MinMaxSeals, r.MaxSeals)
	}
	if r.RetireGrace < 0 {
		c.add("keyring.rotation.retire_grace", "must not be negative; 0 disables (got %s)", r.RetireGrace)
	}
	if r.MaintenanceInterval < 0 {
		c.add("keyring.rotation.maintenance_interval", "must not be negative; 0 disables (got %s)", r.MaintenanceInterval)
	}
	if r.MaintenanceRate < 0 || math.IsNaN(r.MaintenanceRate) || math.IsInf(r.MaintenanceRate, 0) {
		c.add("keyring.rotation.maintenance_rate", "must be a non-negative number of keys per second; 0: unpaced (got %v)", r.MaintenanceRate)
	}
}

func (c *checker) listen(path, addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		c.add(path, "must be host:port (got %q)", addr)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		c.add(path, "bad port %q", port)
	}
	_ = host
}

// isLoopback reports whether a listen host is a loopback name or address ("" and 0.0.0.0 are
// every interface).
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// extprocLimits checks the limits, stream shares, deadlines and memory budget of ext_proc with
// the extproc package's own rules (limits.Check*), which NewServer applies too.
func (c *checker) extprocLimits(e *ExtProc) {
	c.owner("extproc.max_body_bytes", limits.CheckMaxBodyBytes(e.MaxBodyBytes))
	c.positive("extproc.key_timeout", e.KeyTimeout)
	c.owner("extproc.max_fields", limits.CheckMaxFields(e.MaxFields))
	c.owner("extproc.max_concurrent_streams", limits.CheckMaxConcurrentStreams(e.MaxConcurrentStreams))
	c.owner("extproc.max_streams_per_client", limits.CheckStreamShare(e.MaxStreamsPerClient, e.MaxConcurrentStreams))
	c.owner("extproc.max_streams_per_tenant", limits.CheckStreamShare(e.MaxStreamsPerTenant, e.MaxConcurrentStreams))
	c.positive("extproc.stream_timeout", e.StreamTimeout)
	c.positive("extproc.idle_timeout", e.IdleTimeout)
	c.positive("extproc.first_message_timeout", e.FirstMessageTimeout)
	maxBody := int(min(e.MaxBodyBytes, limits.MaxBodyBytesLimit)) // a bad max_body_bytes is reported above
	c.owner("extproc.memory_budget_bytes", limits.CheckMemoryBudget(e.MemoryBudgetBytes, maxBody))
	c.owner("extproc.max_compression_ratio", limits.CheckMaxCompressionRatio(e.MaxCompressionRatio))
	if t := e.SlowTrace; t.On() {
		c.owner("extproc.slow_trace", limits.CheckSlowTrace(t.Threshold, t.Dir, t.MaxFiles, t.MinInterval))
	}
}

// owner records err, the verdict of the package that owns the rule for the value at path.
func (c *checker) owner(path string, err error) {
	if err != nil {
		c.add(path, "%v", err)
	}
}

func (c *checker) positive(path string, d time.Duration) {
	if d <= 0 {
		c.add(path, "must be a positive duration such as 500ms (got %s)", d)
	}
}

func (c *checker) kms(k *KMS) {
	switch k.Provider {
	case "aws", "local":
	default:
		c.add("kms.provider", "must be aws or local (got %q)", k.Provider)
	}
	c.positive("kms.timeout", k.Timeout)
	if len(k.Regions) == 0 {
		c.add("kms.regions", "needs at least one region")
	}
	seen := map[string]bool{}
	for i, r := range k.Regions {
		p := fmt.Sprintf("kms.regions[%d]", i)
		if r.Name == "" {
			c.add(p+".name", "must not be empty")
		} else if !regionName.MatchString(r.Name) {
			c.add(p+".name", "must be letters, digits and dashes (got %q)", r.Name)
		}
		if seen[r.Name] {
			c.add(p+".name", "duplicate region %q", r.Name)
		}
		seen[r.Name] = true
		if k.Provider == "aws" {
			switch {
			case r.KeyID == "":
				c.add(p+".key_id", "must name the region's KMS key (ARN preferred)")
			case strings.HasPrefix(r.KeyID, "alias/") || strings.Contains(r.KeyID, ":alias/"):
				c.add(p+".key_id", "aliases are region-local and can be repointed: use the key ARN or id")
			}
			if r.Endpoint != "" && !strings.HasPrefix(r.Endpoint, "http://") && !strings.HasPrefix(r.Endpoint, "https://") {
				c.add(p+".endpoint", "must be an http(s) URL (got %q)", r.Endpoint)
			}
		}
	}
	if k.BreakerThreshold <= 0 {
		c.add("kms.breaker_threshold", "must be positive (got %d)", k.BreakerThreshold)
	}
	c.positive("kms.breaker_cooldown", k.BreakerCooldown)
	c.positive("kms.repair_interval", k.RepairInterval)
	if k.CreateRate == 0 || math.IsNaN(k.CreateRate) || math.IsInf(k.CreateRate, 0) {
		c.add("kms.create_rate", "must be positive (new keys per second), or negative for no limit; "+
			"to stop requests creating keys set create: admin_only on the policies (got %v)", k.CreateRate)
	}
	if k.CreateBurst <= 0 {
		c.add("kms.create_burst", "must be positive (got %d)", k.CreateBurst)
	}
	c.owner("kms.min_regions", keyring.CheckMinRegions(k.MinRegions, len(k.Regions)))
	c.hierarchical(k)
}

var regionName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,63}$`)

func (c *checker) store(s *Store) {
	switch s.Type {
	case "embedded":
		if s.Embedded.Path == "" {
			c.add("store.embedded.path", "must not be empty")
		}
	case "memory":
	case "dynamodb":
		d := s.DynamoDB
		if d.Table == "" {
			c.add("store.dynamodb.table", "must not be empty")
		}
		if d.Region == "" {
			c.add("store.dynamodb.region", "must not be empty")
		}
		if d.Endpoint != "" && len(d.Endpoints) > 0 {
			c.add("store.dynamodb.endpoints", "set endpoint or endpoints, not both")
		}
		c.positive("store.dynamodb.timeout", d.Timeout)
	default:
		c.add("store.type", "must be dynamodb, embedded or memory (got %q)", s.Type)
	}
}

// policies compiles the policies once, keeping the set for the server. Only when that fails
// does it check each policy on its own, so that every problem gets the line of the key it is
// about (the policy package starts each message with the field: "mode: ...",
// "request.encrypt[1]: ..."), and the names across policies.
func (c *checker) policies(ps []policy.Config) {
	set, err := policy.Compile(ps)
	if err == nil {
		c.policySet = set
		return
	}
	seen := map[string]int{}
	for i := range ps {
		path := fmt.Sprintf("policies[%d]", i)
		if err := policy.Check(ps[i : i+1]); err != nil {
			prefix := "policies[0]: "
			if ps[i].Name != "" {
				prefix = fmt.Sprintf("policy %q: ", ps[i].Name)
			}
			for _, e := range flatten(err) {
				field, msg := policyField(strings.TrimPrefix(e.Error(), prefix))
				c.add(joinPath(path, field), "%s", msg)
			}
		}
		if prev, dup := seen[ps[i].Name]; dup && ps[i].Name != "" {
			c.add(path+".name", "duplicate policy name %q (first at policies[%d])", ps[i].Name, prev)
		}
		seen[ps[i].Name] = i
	}
}

// policyFieldRE matches the field a policy problem starts with: "request.encrypt[1]: ...".
var policyFieldRE = regexp.MustCompile(`^([a-z_]+(?:\[\d+\])?(?:\.[a-z_]+(?:\[\d+\])?)*): (.*)$`)

// policyField splits a policy problem into its field ("" when it names none) and the rest.
func policyField(msg string) (field, rest string) {
	if m := policyFieldRE.FindStringSubmatch(msg); m != nil {
		return m[1], m[2]
	}
	return "", msg
}

// flatten splits an errors.Join tree into its leaves.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// lineOf finds the line of a dotted path (with [i] indices) in the parsed file: the line of its
// key (of its entry, for a list item), falling back to the nearest ancestor that exists there
// (a missing key is reported at the line of the mapping that lacks it); 0 if nothing matches
// (e.g. a default value).
func lineOf(root *yaml.Node, path string) int {
	if root == nil || len(root.Content) == 0 {
		return 0
	}
	n := root.Content[0]
	line := 0
	for _, part := range splitPath(path) {
		next, at := child(n, part)
		if next == nil {
			return line
		}
		n, line = next, at
	}
	return line
}

func splitPath(path string) []string {
	var parts []string
	for _, p := range strings.Split(path, ".") {
		for {
			i := strings.IndexByte(p, '[')
			if i < 0 {
				break
			}
			if i > 0 {
				parts = append(parts, p[:i])
			}
			j := strings.IndexByte(p, ']')
			if j < i {
				break
			}
			parts = append(parts, p[i:j+1])
			p = p[j+1:]
		}
		if p != "" {
			parts = append(parts, p)
		}
	}
	return parts
}

// child returns the entry part of n (a key, or an [i] index) and the line where it is written:
// the key's line for a mapping entry, the item's for a list entry.
func child(n *yaml.Node, part string) (*yaml.Node, int) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if strings.HasPrefix(part, "[") {
		i, err := strconv.Atoi(strings.Trim(part, "[]"))
		if err != nil || n.Kind != yaml.SequenceNode || i < 0 || i >= len(n.Content) {
			return nil, 0
		}
		return n.Content[i], n.Content[i].Line
	}
	if n.Kind != yaml.MappingNode {
		return nil, 0
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == part {
			return n.Content[i+1], n.Content[i].Line
		}
	}
	return nil, 0
}

// hierarchical checks kms.mode, kms.hierarchical and kms.tenants.
func (c *checker) hierarchical(k *KMS) {
	if k.Mode != keyring.ModeDirect && k.Mode != keyring.ModeHierarchical {
		c.add("kms.mode", "must be %s or %s (got %q)", keyring.ModeDirect, keyring.ModeHierarchical, k.Mode)
	}
	h := k.Hierarchical
	if h.BranchKeys < 1 || h.BranchKeys > keyring.MaxBranchKeys {
		c.add("kms.hierarchical.branch_keys", "must be 1..%d (got %d)", keyring.MaxBranchKeys, h.BranchKeys)
	}
	if h.RotateEvery < 0 || h.RetireGrace < 0 || h.RewrapRate < 0 {
		c.add("kms.hierarchical", "rotate_every, retire_grace and rewrap_rate must not be negative; 0 = never / unpaced")
	}
	names := map[string]bool{}
	for _, r := range k.Regions {
		names[r.Name] = true
	}
	for i, t := range k.Tenants {
		p := fmt.Sprintf("kms.tenants[%d]", i)
		if len(t.IDs)+len(t.IDPrefixes) == 0 {
			c.add(p, "needs ids or id_prefixes")
		}
		for _, id := range append(append([]string(nil), t.IDs...), t.IDPrefixes...) {
			if err := keyring.ValidateID(id); err != nil {
				c.add(p, "id or prefix %q: %v", id, err)
			}
		}
		if len(t.Regions) == 0 {
			c.add(p+".regions", "needs at least one region")
		}
		c.owner(p+".min_regions", keyring.CheckMinRegions(t.MinRegions, len(t.Regions)))
		for j, r := range t.Regions {
			rp := fmt.Sprintf("%s.regions[%d]", p, j)
			if r.Name == "" || names[r.Name] {
				c.add(rp+".name", "must be set and unique among all regions (got %q)", r.Name)
			}
			names[r.Name] = true
			if k.Provider == "aws" && r.KeyID == "" {
				c.add(rp+".key_id", "must name the tenant's KMS key (ARN preferred)")
			}
		}
	}
}
