package awskms

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/rkms/rkms/keyring"
)

// DefaultTimeout is the per-call deadline when Config.Timeout is zero.
const DefaultTimeout = 2 * time.Second

// ErrAliasKeyID is returned by New for an alias key id unless Config.AllowAlias is set.
var ErrAliasKeyID = errors.New("kms key is configured by alias; configure its key ARN or id (or allow aliases explicitly)")

// Config configures one region.
type Config struct {
	// Name is the region's name in the keyring (the key of store.Version.Wrapped). It is also
	// the AWS region unless AWSRegion is set.
	Name string
	// AWSRegion is the AWS region of the client; default Name.
	AWSRegion string
	// KeyID is the KMS key: a key ARN (preferred) or key id.
	KeyID string
	// Endpoint overrides the KMS endpoint (e.g. http://127.0.0.1:PORT for local-kms).
	Endpoint string
	// Timeout is the deadline of each call; default DefaultTimeout.
	Timeout time.Duration
	// MaxAttempts is the number of attempts per call, retries included; default 1 (no SDK
	// retries, see the package doc).
	MaxAttempts int
	// AllowAlias accepts an alias as KeyID (not recommended, see the package doc).
	AllowAlias bool
}

// Region is an AWS KMS region. It is safe for concurrent use.
type Region struct {
	name    string
	keyID   string
	timeout time.Duration
	client  *kms.Client
}

var _ keyring.Region = (*Region)(nil)

// New returns a region with its own KMS client built from awsCfg (credentials, HTTP client), with
// the region, endpoint and retry policy of cfg.
func New(cfg Config, awsCfg aws.Config) (*Region, error) {
	if cfg.Name == "" {
		return nil, errors.New("awskms: region name is empty")
	}
	if cfg.AWSRegion == "" {
		cfg.AWSRegion = cfg.Name
	}
	if err := checkKeyID(cfg); err != nil {
		return nil, fmt.Errorf("awskms region %s: %w", cfg.Name, err)
	}
	if cfg.Timeout < 0 || cfg.MaxAttempts < 0 {
		return nil, fmt.Errorf("awskms region %s: negative timeout or max attempts", cfg.Name)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 1
	}
	client := kms.NewFromConfig(awsCfg, func(o *kms.Options) {
		o.Region = cfg.AWSRegion
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.RetryMaxAttempts = 0 // the retryer below decides
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = cfg.MaxAttempts
			so.RateLimiter = ratelimit.None // no client-side quota: see the package doc
		})
	})
	return &Region{name: cfg.Name, keyID: cfg.KeyID, timeout: cfg.Timeout, client: client}, nil
}

// checkKeyID refuses empty ids, aliases (unless allowed) and ARNs of another region.
func checkKeyID(cfg Config) error {
	id := cfg.KeyID
	if id == "" {
		return errors.New("kms key id is empty")
	}
	isAlias := strings.HasPrefix(id, "alias/")
	if strings.HasPrefix(id, "arn:") {
		parts := strings.SplitN(id, ":", 6)
		if len(parts) != 6 || parts[2] != "kms" {
			return fmt.Errorf("kms key %q is not a KMS ARN", id)
		}
		if parts[3] != cfg.AWSRegion {
			return fmt.Errorf("kms key %q is in region %q, but the client is for %q", id, parts[3], cfg.AWSRegion)
		}
		isAlias = strings.HasPrefix(parts[5], "alias/")
	}
	if isAlias && !cfg.AllowAlias {
		return fmt.Errorf("%w: %q", ErrAliasKeyID, id)
	}
	return nil
}

// Name implements keyring.Region.
func (r *Region) Name() string { return r.name }

// KeyID implements keyring.Region.
func (r *Region) KeyID() string { return r.keyID }

// GenerateDataKey implements keyring.Region: an AES_256 data key.
func (r *Region) GenerateDataKey(ctx context.Context, encCtx map[string]string) (plaintext, wrapped []byte, err error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	out, err := r.client.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
		KeyId:             aws.String(r.keyID),
		KeySpec:           types.DataKeySpecAes256,
		EncryptionContext: encCtx,
	})
	if err != nil {
		return nil, nil, r.classify(ctx, "generate data key", err)
	}
	return out.Plaintext, out.CiphertextBlob, nil
}

// Encrypt implements keyring.Region.
func (r *Region) Encrypt(ctx context.Context, plaintext []byte, encCtx map[string]string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	out, err := r.client.Encrypt(ctx, &kms.EncryptInput{
		KeyId:               aws.String(r.keyID),
		Plaintext:           plaintext,
		EncryptionContext:   encCtx,
		EncryptionAlgorithm: types.EncryptionAlgorithmSpecSymmetricDefault,
	})
	if err != nil {
		return nil, r.classify(ctx, "encrypt", err)
	}
	return out.CiphertextBlob, nil
}

// Decrypt implements keyring.Region. It names the configured key, so a ciphertext made under any
// other key is refused.
func (r *Region) Decrypt(ctx context.Context, wrapped []byte, encCtx map[string]string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	out, err := r.client.Decrypt(ctx, &kms.DecryptInput{
		KeyId:               aws.String(r.keyID),
		CiphertextBlob:      wrapped,
		EncryptionContext:   encCtx,
		EncryptionAlgorithm: types.EncryptionAlgorithmSpecSymmetricDefault,
	})
	if err != nil {
		return nil, r.classify(ctx, "decrypt", err)
	}
	return out.Plaintext, nil
}
