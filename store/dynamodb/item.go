package dynamodb

import (
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/rkms/rkms/store"
)

// schemaVersion is the item layout written by this package (see the package doc).
const schemaVersion = 1

// Attribute names of the item layout.
const (
	attrID       = "id"
	attrSchema   = "schema"
	attrRev      = "rev"
	attrCur      = "cur"
	attrVersions = "versions"
	attrNumber   = "number"
	attrCreated  = "created"
	attrWrapped  = "wrapped"
	attrKeyID    = "key_id"
	attrBlob     = "blob"
	attrMissing  = "missing"
	attrDeleted  = "deleted"
	// Version lifecycle (absent in items written before it existed, and when zero).
	attrMinDecrypt = "min_decrypt"
	attrRetired    = "retired"
	attrDestroyed  = "destroyed"
	attrSeals      = "seals"
	// Hierarchical mode: a version wrapped under a branch key (absent in every other version).
	attrBranch        = "branch"
	attrBranchVersion = "version"
)

func attrS(s string) *types.AttributeValueMemberS { return &types.AttributeValueMemberS{Value: s} }
func attrN(n int64) *types.AttributeValueMemberN {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func keyOf(id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrID: attrS(id)}
}

// encodeItem returns the item for rec with revision rev. Empty strings and blobs are left out, as
// DynamoDB has not always accepted them.
func encodeItem(rec *store.Record, rev int64) map[string]types.AttributeValue {
	versions := make([]types.AttributeValue, len(rec.Versions))
	for i, v := range rec.Versions {
		wrapped := make(map[string]types.AttributeValue, len(v.Wrapped))
		for region, w := range v.Wrapped {
			m := make(map[string]types.AttributeValue, 2)
			if w.KeyID != "" {
				m[attrKeyID] = attrS(w.KeyID)
			}
			if len(w.Blob) > 0 {
				m[attrBlob] = &types.AttributeValueMemberB{Value: w.Blob}
			}
			wrapped[region] = &types.AttributeValueMemberM{Value: m}
		}
		vm := map[string]types.AttributeValue{
			attrNumber:  attrN(int64(v.Number)),
			attrCreated: attrS(v.Created.UTC().Format(time.RFC3339Nano)),
			attrWrapped: &types.AttributeValueMemberM{Value: wrapped},
		}
		if len(v.Missing) > 0 {
			missing := make([]types.AttributeValue, len(v.Missing))
			for j, r := range v.Missing {
				missing[j] = attrS(r)
			}
			vm[attrMissing] = &types.AttributeValueMemberL{Value: missing}
		}
		if !v.Retired.IsZero() {
			vm[attrRetired] = attrS(v.Retired.UTC().Format(time.RFC3339Nano))
		}
		if !v.Destroyed.IsZero() {
			vm[attrDestroyed] = attrS(v.Destroyed.UTC().Format(time.RFC3339Nano))
		}
		if v.Seals > 0 {
			vm[attrSeals] = &types.AttributeValueMemberN{Value: strconv.FormatUint(v.Seals, 10)}
		}
		if v.IsBranchWrapped() {
			vm[attrBranch] = &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
				attrKeyID:         attrS(v.Branch.KeyID),
				attrBranchVersion: attrN(int64(v.Branch.Version)),
				attrBlob:          &types.AttributeValueMemberB{Value: v.Branch.Blob},
			}}
		}
		versions[i] = &types.AttributeValueMemberM{Value: vm}
	}
	item := map[string]types.AttributeValue{
		attrID:       attrS(rec.ID),
		attrSchema:   attrN(schemaVersion),
		attrRev:      attrN(rev),
		attrCur:      attrN(int64(rec.Current)),
		attrVersions: &types.AttributeValueMemberL{Value: versions},
	}
	if rec.IsTombstone() {
		item[attrDeleted] = attrS(rec.Deleted.UTC().Format(time.RFC3339Nano))
	}
	if rec.MinDecryptVersion > 0 {
		item[attrMinDecrypt] = attrN(int64(rec.MinDecryptVersion))
	}
	return item
}

// decodeItem parses an item strictly; unknown attributes are ignored (global tables and operators
// may add their own). The SDK hands over fresh slices, so the record shares nothing. Every failure
// wraps [store.ErrCorrupt].
func decodeItem(item map[string]types.AttributeValue) (*store.Record, error) {
	schema, err := getInt(item, attrSchema, 0, 1<<31)
	if err != nil {
		return nil, err
	}
	if schema != schemaVersion {
		return nil, corrupt("schema version %d, want %d", schema, schemaVersion)
	}
	id, err := getS(item, attrID, true)
	if err != nil {
		return nil, err
	}
	rev, err := getInt(item, attrRev, 1, store.MaxRevision)
	if err != nil {
		return nil, err
	}
	cur, err := getInt(item, attrCur, 0, 1<<32-1)
	if err != nil {
		return nil, err
	}
	list, ok := item[attrVersions].(*types.AttributeValueMemberL)
	if !ok {
		return nil, corrupt("attribute %q missing or not a list", attrVersions)
	}
	rec := &store.Record{ID: id, Revision: rev, Current: uint32(cur), Versions: make([]store.Version, len(list.Value))}
	deletedS, err := getS(item, attrDeleted, false)
	if err != nil {
		return nil, err
	}
	if deletedS != "" {
		deleted, err := time.Parse(time.RFC3339Nano, deletedS)
		if err != nil || deleted.IsZero() {
			return nil, corrupt("bad deleted time %q", deletedS)
		}
		rec.Deleted = deleted.UTC()
	}
	if _, ok := item[attrMinDecrypt]; ok {
		minDecrypt, err := getInt(item, attrMinDecrypt, 0, cur)
		if err != nil {
			return nil, err
		}
		rec.MinDecryptVersion = uint32(minDecrypt)
	}
	for i, av := range list.Value {
		m, ok := av.(*types.AttributeValueMemberM)
		if !ok {
			return nil, corrupt("version %d is not a map", i)
		}
		v, err := decodeVersion(m.Value)
		if err != nil {
			return nil, fmt.Errorf("version %d: %w", i, err)
		}
		rec.Versions[i] = v
	}
	return rec, nil
}

func decodeVersion(m map[string]types.AttributeValue) (store.Version, error) {
	n, err := getInt(m, attrNumber, 0, 1<<32-1)
	if err != nil {
		return store.Version{}, err
	}
	createdS, err := getS(m, attrCreated, true)
	if err != nil {
		return store.Version{}, err
	}
	created, err := time.Parse(time.RFC3339Nano, createdS)
	if err != nil {
		return store.Version{}, corrupt("bad created time: %v", err)
	}
	wm, ok := m[attrWrapped].(*types.AttributeValueMemberM)
	if !ok {
		return store.Version{}, corrupt("attribute %q missing or not a map", attrWrapped)
	}
	v := store.Version{Number: uint32(n), Created: created.UTC(), Wrapped: make(map[string]store.Wrapped, len(wm.Value))}
	for region, av := range wm.Value {
		w, ok := av.(*types.AttributeValueMemberM)
		if !ok {
			return store.Version{}, corrupt("wrapped key of %q is not a map", region)
		}
		keyID, err := getS(w.Value, attrKeyID, false)
		if err != nil {
			return store.Version{}, err
		}
		var blob []byte
		switch b := w.Value[attrBlob].(type) {
		case nil:
		case *types.AttributeValueMemberB:
			blob = b.Value
		default:
			return store.Version{}, corrupt("blob of %q is not binary", region)
		}
		v.Wrapped[region] = store.Wrapped{KeyID: keyID, Blob: blob}
	}
	switch l := m[attrMissing].(type) {
	case nil:
	case *types.AttributeValueMemberL:
		v.Missing = make([]string, len(l.Value))
		for j, av := range l.Value {
			s, ok := av.(*types.AttributeValueMemberS)
			if !ok {
				return store.Version{}, corrupt("missing region %d is not a string", j)
			}
			v.Missing[j] = s.Value
		}
	default:
		return store.Version{}, corrupt("attribute %q is not a list", attrMissing)
	}
	if err := decodeLifecycle(m, &v); err != nil {
		return store.Version{}, err
	}
	if err := decodeBranch(m, &v); err != nil {
		return store.Version{}, err
	}
	return v, nil
}

// decodeBranch reads a version's optional branch wrap into v and checks it ([store.Version.CheckBranch]).
func decodeBranch(m map[string]types.AttributeValue, v *store.Version) error {
	switch b := m[attrBranch].(type) {
	case nil:
	case *types.AttributeValueMemberM:
		keyID, err := getS(b.Value, attrKeyID, true)
		if err != nil {
			return err
		}
		bv, err := getInt(b.Value, attrBranchVersion, 1, 1<<32-1)
		if err != nil {
			return err
		}
		blob, ok := b.Value[attrBlob].(*types.AttributeValueMemberB)
		if !ok {
			return corrupt("branch blob missing or not binary")
		}
		v.Branch = store.BranchWrap{KeyID: keyID, Version: uint32(bv), Blob: blob.Value}
	default:
		return corrupt("attribute %q is not a map", attrBranch)
	}
	if err := v.CheckBranch(); err != nil {
		return fmt.Errorf("decode key record item: %w", err)
	}
	return nil
}

// decodeLifecycle reads a version's optional lifecycle attributes into v.
func decodeLifecycle(m map[string]types.AttributeValue, v *store.Version) error {
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{attrRetired, &v.Retired}, {attrDestroyed, &v.Destroyed}} {
		s, err := getS(m, t.name, false)
		if err != nil {
			return err
		}
		if s == "" {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, s)
		if err != nil || at.IsZero() {
			return corrupt("bad %s time %q", t.name, s)
		}
		*t.dst = at.UTC()
	}
	if v.IsDestroyed() && len(v.Wrapped) > 0 {
		return corrupt("version %d is destroyed but holds wrapped copies", v.Number)
	}
	switch n := m[attrSeals].(type) {
	case nil:
	case *types.AttributeValueMemberN:
		seals, err := strconv.ParseUint(n.Value, 10, 64)
		if err != nil {
			return corrupt("attribute %q = %q, want an unsigned integer", attrSeals, n.Value)
		}
		v.Seals = seals
	default:
		return corrupt("attribute %q is not a number", attrSeals)
	}
	return nil
}

// getS returns a string attribute; an absent optional one is "".
func getS(m map[string]types.AttributeValue, name string, required bool) (string, error) {
	switch s := m[name].(type) {
	case *types.AttributeValueMemberS:
		return s.Value, nil
	case nil:
		if !required {
			return "", nil
		}
	}
	return "", corrupt("attribute %q missing or not a string", name)
}

// getInt returns a required decimal integer attribute within [lo, hi].
func getInt(m map[string]types.AttributeValue, name string, lo, hi int64) (int64, error) {
	a, ok := m[name].(*types.AttributeValueMemberN)
	if !ok {
		return 0, corrupt("attribute %q missing or not a number", name)
	}
	n, err := strconv.ParseInt(a.Value, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, corrupt("attribute %q = %q, want an integer in [%d, %d]", name, a.Value, lo, hi)
	}
	return n, nil
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("decode key record item: %s: %w", fmt.Sprintf(format, args...), store.ErrCorrupt)
}
