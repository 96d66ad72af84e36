package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/rkms/rkms/extproc"
	"github.com/rkms/rkms/internal/config"
	"github.com/rkms/rkms/keyring"
	"github.com/rkms/rkms/keyring/awskms"
	"github.com/rkms/rkms/keyring/localkms"
	"github.com/rkms/rkms/store"
	"github.com/rkms/rkms/store/dynamodb"
	"github.com/rkms/rkms/store/embedded"
)

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level)) // checked by config
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// buildTenants makes the keyring's per-tenant KMS keys (kms.tenants), each region built like
// the shared ones and wrapped by wrap (metrics).
func buildTenants(ctx context.Context, cfg *config.Config, log *slog.Logger, wrap func(keyring.Region) keyring.Region) ([]keyring.TenantKeys, error) {
	var out []keyring.TenantKeys
	for i, t := range cfg.KMS.Tenants {
		regs := make([]config.Region, len(t.Regions))
		for j, r := range t.Regions {
			regs[j] = config.Region{Name: r.Name, KeyID: r.KeyID, Endpoint: r.Endpoint}
			if r.AWSRegion != "" && cfg.KMS.Provider == "aws" {
				regs[j].Name = r.AWSRegion
			}
		}
		built, err := buildRegionList(ctx, cfg, regs, log)
		if err != nil {
			return nil, fmt.Errorf("kms.tenants[%d]: %w", i, err)
		}
		tk := keyring.TenantKeys{IDs: t.IDs, IDPrefixes: t.IDPrefixes, MinRegions: t.MinRegions}
		for j, r := range built {
			tk.Regions = append(tk.Regions, wrap(renamed{Region: r, name: t.Regions[j].Name}))
		}
		out = append(out, tk)
	}
	return out, nil
}

// renamed gives a region the configured name of a tenant's key (unique among all regions),
// whatever AWS region it is in.
type renamed struct {
	keyring.Region
	name string
}

func (r renamed) Name() string { return r.name }

// buildRegions makes one keyring.Region per configured region.
func buildRegions(ctx context.Context, cfg *config.Config, log *slog.Logger) ([]keyring.Region, error) {
	return buildRegionList(ctx, cfg, cfg.KMS.Regions, log)
}

func buildRegionList(ctx context.Context, cfg *config.Config, list []config.Region, log *slog.Logger) ([]keyring.Region, error) {
	regions := make([]keyring.Region, 0, len(list))
	for _, rc := range list {
		switch cfg.KMS.Provider {
		case "local":
			r, err := localkms.Open(cfg.LocalKMSDir(), rc.Name, log)
			if err != nil {
				return nil, fmt.Errorf("local kms region %s: %w", rc.Name, err)
			}
			regions = append(regions, r)
		case "aws":
			awsCfg, err := loadAWS(ctx, rc.Name)
			if err != nil {
				return nil, err
			}
			r, err := awskms.New(awskms.Config{Name: rc.Name, AWSRegion: rc.Name, KeyID: rc.KeyID,
				Endpoint: rc.Endpoint, Timeout: cfg.KMS.Timeout}, awsCfg)
			if err != nil {
				return nil, fmt.Errorf("aws kms region %s: %w", rc.Name, err)
			}
			regions = append(regions, r)
		default:
			return nil, fmt.Errorf("unknown kms provider %q", cfg.KMS.Provider)
		}
	}
	return regions, nil
}

// loadAWS loads the SDK's standard credential chain for region.
func loadAWS(ctx context.Context, region string) (aws.Config, error) {
	c, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(region))
	if err != nil {
		return aws.Config{}, fmt.Errorf("load aws config for %s: %w", region, err)
	}
	return c, nil
}

func buildStore(ctx context.Context, cfg *config.Config) (store.Store, error) {
	switch cfg.Store.Type {
	case "memory":
		return store.NewMemory(), nil
	case "embedded":
		s, err := embedded.Open(cfg.Store.Embedded.Path)
		if err != nil {
			return nil, fmt.Errorf("embedded store: %w", err)
		}
		return s, nil
	case "dynamodb":
		d := cfg.Store.DynamoDB
		awsCfg, err := loadAWS(ctx, d.Region)
		if err != nil {
			return nil, err
		}
		endpoints := d.Endpoints
		if d.Endpoint != "" {
			endpoints = []string{d.Endpoint}
		}
		s, err := dynamodb.New(ctx, dynamodb.Config{Table: d.Table, Region: d.Region, Endpoints: endpoints,
			CreateTable: d.CreateTable, Timeout: d.Timeout}, awsCfg)
		if err != nil {
			return nil, fmt.Errorf("dynamodb store: %w", err)
		}
		return s, nil
	}
	return nil, fmt.Errorf("unknown store type %q", cfg.Store.Type)
}

func keyringOptions(cfg *config.Config, log *slog.Logger) keyring.Options {
	r := cfg.Keyring.Rotation
	// MinRegions 0 is the keyring's majority (keyring.DefaultMinRegions).
	return keyring.Options{MinRegions: cfg.KMS.MinRegions, CacheTTL: cfg.Cache.TTL, CacheMaxKeys: cfg.Cache.MaxKeys,
		CacheMaxDerived: cfg.Cache.MaxDerived,
		MaxStale:        cfg.Cache.MaxStale, BreakerThreshold: cfg.KMS.BreakerThreshold, BreakerCooldown: cfg.KMS.BreakerCooldown,
		RepairInterval: cfg.KMS.RepairInterval, CreateRate: cfg.KMS.CreateRate, CreateBurst: cfg.KMS.CreateBurst,
		NegativeTTL: cfg.Cache.NegativeTTL, NegativeMaxKeys: cfg.Cache.NegativeMaxKeys, Logger: log,
		MaxAge: r.MaxAge, MaxSeals: r.MaxSeals, RetireGrace: offIfZero(r.RetireGrace),
		MaintenanceInterval: offIfZero(r.MaintenanceInterval), MaintenanceRate: unpacedIfZero(r.MaintenanceRate),
		Mode: cfg.KMS.Mode, Hierarchical: hierarchicalOptions(cfg.KMS.Hierarchical),
		WrappedTTL: cfg.Cache.WrappedTTL, WrappedMaxKeys: cfg.Cache.WrappedMaxKeys}
}

// hierarchicalOptions maps kms.hierarchical (0 = never / unpaced) to the keyring's options.
func hierarchicalOptions(h config.Hierarchical) keyring.Hierarchical {
	return keyring.Hierarchical{BranchKeys: h.BranchKeys, RotateEvery: offIfZero(h.RotateEvery),
		RetireGrace: offIfZero(h.RetireGrace), RewrapRate: unpacedIfZero(h.RewrapRate)}
}

// unpacedIfZero maps a config rate where 0 is unpaced to a keyring option where 0 is the default
// and a negative value is unpaced.
func unpacedIfZero(r float64) float64 {
	if r == 0 {
		return -1
	}
	return r
}

// offIfZero maps a config duration where 0 disables to a keyring option where 0 is the default
// and a negative value disables.
func offIfZero(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// extprocOptions maps the extproc section of cfg to the server's options; budget is the body
// memory budget sized by sizeMemory.
func extprocOptions(cfg *config.Config, log *slog.Logger, obs extproc.Observer, budget int64) extproc.Options {
	e := cfg.ExtProc
	return extproc.Options{
		Logger:       log,
		MaxBodyBytes: int(e.MaxBodyBytes),
		KeyTimeout:   e.KeyTimeout,
		Observer:     obs,

		MaxFields:            e.MaxFields,
		MaxConcurrentStreams: e.MaxConcurrentStreams,
		MaxStreamsPerClient:  e.MaxStreamsPerClient,
		MaxStreamsPerTenant:  e.MaxStreamsPerTenant,
		StreamTimeout:        e.StreamTimeout,
		IdleTimeout:          e.IdleTimeout,
		FirstMessageTimeout:  e.FirstMessageTimeout,
		MemoryBudget:         budget,
		TrustRequestID:       e.TrustRequestID,
		MaxCompressionRatio:  e.MaxCompressionRatio,
		SlowTrace:            slowTrace(e.SlowTrace),
	}
}

// slowTrace maps extproc.slow_trace to the server's option (nil: off).
func slowTrace(t config.SlowTrace) *extproc.SlowTraceOptions {
	if !t.On() {
		return nil
	}
	return &extproc.SlowTraceOptions{Threshold: t.Threshold, Dir: t.Dir, MaxFiles: t.MaxFiles, MinInterval: t.MinInterval}
}
