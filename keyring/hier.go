package keyring

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/secret"
	"github.com/rkms/rkms/store"
)

// Key modes ([Options.Mode]): how new data keys are wrapped. Reads never depend on the mode: a
// record says itself how each version is wrapped ([store.Version.Branch]).
const (
	// ModeDirect wraps every data key under every KMS region (one KMS Decrypt per key and
	// replica per cache TTL).
	ModeDirect = "direct"
	// ModeHierarchical wraps tenant data keys locally (AES-256-GCM, WRAP.md) under a branch
	// key, itself a direct-mode key under a reserved id ([BranchKeyID]).
	ModeHierarchical = "hierarchical"
)

// Defaults of [Hierarchical] and of the wrapped-record cache.
const (
	DefaultBranchKeys        = 1
	DefaultBranchRotateEvery = 720 * time.Hour
	DefaultBranchRetireGrace = 168 * time.Hour
	DefaultRewrapRate        = 50
	DefaultWrappedTTL        = time.Hour
	DefaultWrappedMaxKeys    = 100000
	// MaxBranchKeys bounds Hierarchical.BranchKeys.
	MaxBranchKeys = 1 << 16
)

// BranchKeyPrefix starts every branch key id: "_rkms.branch.<n>". It is within
// [envelope.ReservedKeyIDPrefix], so no policy can seal under a branch key, and the key APIs
// refuse branch ids to every credential that does not name this prefix itself
// (internal/access).
const BranchKeyPrefix = envelope.ReservedKeyIDPrefix + "branch."

// ErrBranchRetired: a tenant key version is wrapped under a branch key version that was
// retired (its grace after a branch rotation passed before the record was re-wrapped). The
// tenant version can no longer be opened: fail closed. It wraps [ErrVersionRetired].
var ErrBranchRetired = fmt.Errorf("wrapped under a retired branch key version: %w", ErrVersionRetired)

// Hierarchical tunes hierarchical mode. Zero values take the defaults.
type Hierarchical struct {
	// BranchKeys is how many branch keys share the tenants: id maps to BranchFor(id, n).
	// Default 1, at most MaxBranchKeys.
	BranchKeys int
	// RotateEvery rotates a branch key's current version when it is this old (less the same
	// lead as Options.MaxAge). Default 720h; negative: never.
	RotateEvery time.Duration
	// RetireGrace is how long a branch key version still opens after the version that
	// replaced it was created; tenant records still under it then fail with ErrBranchRetired.
	// Default 168h; negative: never retired.
	RetireGrace time.Duration
	// RewrapRate bounds the background re-wrap pass (records per second). Default 50;
	// negative: unpaced.
	RewrapRate float64
}

// BranchKeyID returns the id of branch key n.
func BranchKeyID(n int) string { return BranchKeyPrefix + strconv.Itoa(n) }

// IsBranchKeyID reports whether id is a branch key id (it starts with [BranchKeyPrefix]).
func IsBranchKeyID(id string) bool { return strings.HasPrefix(id, BranchKeyPrefix) }

// BranchFor returns the branch key number of key id among n: the first 8 bytes of SHA-256(id),
// big endian, modulo n. It is stable across replicas and releases.
func BranchFor(id string, n int) int {
	if n <= 1 {
		return 0
	}
	sum := sha256.Sum256([]byte(id))
	return int(binary.BigEndian.Uint64(sum[:8]) % uint64(n))
}

func hierDefaults(o *Options) error {
	switch o.Mode {
	case "":
		o.Mode = ModeDirect
	case ModeDirect, ModeHierarchical:
	default:
		return fmt.Errorf("mode must be %s or %s (got %q)", ModeDirect, ModeHierarchical, o.Mode)
	}
	h := &o.Hierarchical
	orDefault(&h.BranchKeys, DefaultBranchKeys)
	orDefault(&h.RotateEvery, DefaultBranchRotateEvery)
	orDefault(&h.RetireGrace, DefaultBranchRetireGrace)
	orDefault(&h.RewrapRate, DefaultRewrapRate)
	orDefault(&o.WrappedTTL, DefaultWrappedTTL)
	orDefault(&o.WrappedMaxKeys, DefaultWrappedMaxKeys)
	if h.BranchKeys < 1 || h.BranchKeys > MaxBranchKeys {
		return fmt.Errorf("branch keys must be 1..%d (got %d)", MaxBranchKeys, h.BranchKeys)
	}
	return nil
}

// hierarchical reports whether new versions of id are wrapped under a branch key: in
// hierarchical mode, for every id but reserved ones (branch keys, the index root) and tenants
// with their own KMS keys.
func (k *Keyring) hierarchical(id string) bool {
	return k.opts.Mode == ModeHierarchical && !envelope.IsReservedKeyID(id) && k.tenantSet(id) == nil
}

// branchOf returns the branch key id new versions of id are wrapped under.
func (k *Keyring) branchOf(id string) string {
	return BranchKeyID(BranchFor(id, k.opts.Hierarchical.BranchKeys))
}

// newBranchVersion generates version n of id locally and wraps it under the current version of
// id's branch key (which is created, in every region, on first use).
func (k *Keyring) newBranchVersion(ctx context.Context, id string, n uint32) (*secret.Key, store.Version, error) {
	bid := k.branchOf(id)
	bk, err := k.Get(ctx, bid)
	if err != nil {
		return nil, store.Version{}, fmt.Errorf("branch key %q: %w", bid, err)
	}
	dek := make([]byte, DataKeySize)
	_, _ = rand.Read(dek) // crypto/rand.Read never fails (Go 1.24+)
	var blob []byte
	err = bk.Secret.Use(func(b []byte) error {
		var err error
		blob, err = WrapKey(b, dek, WrapBinding{ID: id, Version: n, BranchID: bid, BranchVersion: bk.Version})
		return err
	})
	if err != nil {
		clear(dek)
		return nil, store.Version{}, fmt.Errorf("wrap under branch key %q version %d: %w", bid, bk.Version, err)
	}
	k.localWraps.Add(1)
	return k.newSecret(dek), store.Version{
		Number:  n,
		Created: k.opts.Now().UTC().Truncate(1e9),
		Wrapped: map[string]store.Wrapped{},
		Branch:  store.BranchWrap{KeyID: bid, Version: bk.Version, Blob: blob},
	}, nil
}

// unwrapBranch opens a branch-wrapped version of id: the branch key version from the cache (or
// the store and KMS, like any key), then the wrap locally.
func (k *Keyring) unwrapBranch(ctx context.Context, id string, ver store.Version) (*secret.Key, error) {
	b := ver.Branch
	if !IsBranchKeyID(b.KeyID) || IsBranchKeyID(id) {
		return nil, fmt.Errorf("unwrap key %q version %d: wrapped under %q, which is not a branch key: %w", id, ver.Number, b.KeyID, ErrWrapAuth)
	}
	bk, err := k.GetVersion(ctx, b.KeyID, b.Version)
	if errors.Is(err, ErrVersionRetired) {
		return nil, fmt.Errorf("unwrap key %q version %d: branch key %q version %d: %w", id, ver.Number, b.KeyID, b.Version, ErrBranchRetired)
	}
	if err != nil {
		return nil, fmt.Errorf("unwrap key %q version %d: branch key: %w", id, ver.Number, err)
	}
	var dek []byte
	err = bk.Secret.Use(func(bkey []byte) error {
		var err error
		dek, err = UnwrapKey(bkey, b.Blob, WrapBinding{ID: id, Version: ver.Number, BranchID: b.KeyID, BranchVersion: b.Version})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("unwrap key %q version %d: %w", id, ver.Number, err)
	}
	k.localUnwraps.Add(1)
	return k.newSecret(dek), nil
}

// rewrapTarget is the branch key a branch-wrapped version of id belongs under now: id's branch
// in hierarchical mode (it changes with BranchKeys), else the one it is under.
func (k *Keyring) rewrapTarget(id string, ver store.Version) string {
	if k.hierarchical(id) {
		return k.branchOf(id)
	}
	return ver.Branch.KeyID
}

// needsRewrap reports whether some version of rec is wrapped under a branch key version older
// than that branch key's current version as this keyring's cache knows it (no store read), or
// under a branch key it no longer maps to.
func (k *Keyring) needsRewrap(rec *store.Record) bool {
	for _, v := range rec.Versions {
		if !v.IsBranchWrapped() {
			continue
		}
		target := k.rewrapTarget(rec.ID, v)
		if target != v.Branch.KeyID {
			return true
		}
		if cur, ok := k.cache.peekCurrent(target); ok && cur > v.Branch.Version {
			return true
		}
	}
	return false
}

// hasBranchWrapped reports whether some version of rec is wrapped under a branch key.
func hasBranchWrapped(rec *store.Record) bool {
	for _, v := range rec.Versions {
		if v.IsBranchWrapped() {
			return true
		}
	}
	return false
}
