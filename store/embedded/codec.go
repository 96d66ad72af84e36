package embedded

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/rkms/rkms/store"
)

// formatVersion is the record encoding version written by this package (see the package doc).
const formatVersion = 1

type recordJSON struct {
	Format   int           `json:"format"`
	ID       string        `json:"id"`
	Revision int64         `json:"revision"`
	Current  uint32        `json:"current"`
	Versions []versionJSON `json:"versions"`
	// Deleted marks a tombstone (RFC 3339, UTC); absent in live records and in every record
	// written before tombstones existed.
	Deleted string `json:"deleted,omitempty"`
	// MinDecryptVersion: absent (0) in records written before version lifecycle existed.
	MinDecryptVersion uint32 `json:"min_decrypt_version,omitempty"`
}

type versionJSON struct {
	Number  uint32                 `json:"number"`
	Created string                 `json:"created"`
	Wrapped map[string]wrappedJSON `json:"wrapped"`
	Missing []string               `json:"missing,omitempty"`
	// Lifecycle fields (RFC 3339, UTC; counts): absent in records written before they existed.
	Retired   string `json:"retired,omitempty"`
	Destroyed string `json:"destroyed,omitempty"`
	Seals     uint64 `json:"seals,omitempty"`
	// Branch: a version wrapped under a branch key (hierarchical mode); absent otherwise.
	Branch *branchJSON `json:"branch,omitempty"`
}

type branchJSON struct {
	KeyID   string `json:"key_id"`
	Version uint32 `json:"version"`
	Blob    []byte `json:"blob"`
}

type wrappedJSON struct {
	KeyID string `json:"key_id"`
	Blob  []byte `json:"blob"`
}

// encode returns the version-1 encoding of rec.
func encode(rec *store.Record) ([]byte, error) {
	r := recordJSON{
		Format:   formatVersion,
		ID:       rec.ID,
		Revision: rec.Revision,
		Current:  rec.Current,
		Versions: make([]versionJSON, len(rec.Versions)),

		MinDecryptVersion: rec.MinDecryptVersion,
	}
	for i, v := range rec.Versions {
		vj := versionJSON{
			Number:  v.Number,
			Created: v.Created.UTC().Format(time.RFC3339Nano),
			Wrapped: make(map[string]wrappedJSON, len(v.Wrapped)),
			Missing: v.Missing,
			Retired: formatTime(v.Retired), Destroyed: formatTime(v.Destroyed), Seals: v.Seals,
		}
		for region, w := range v.Wrapped {
			vj.Wrapped[region] = wrappedJSON{KeyID: w.KeyID, Blob: w.Blob}
		}
		if v.IsBranchWrapped() {
			vj.Branch = &branchJSON{KeyID: v.Branch.KeyID, Version: v.Branch.Version, Blob: v.Branch.Blob}
		}
		r.Versions[i] = vj
	}
	if rec.IsTombstone() {
		r.Deleted = rec.Deleted.UTC().Format(time.RFC3339Nano)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode key record %q: %w", rec.ID, err)
	}
	return b, nil
}

// decode parses a version-1 encoding strictly. Every failure wraps [store.ErrCorrupt].
func decode(data []byte) (*store.Record, error) {
	var r recordJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, corrupt("invalid JSON: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, corrupt("trailing data after the record")
	}
	if r.Format != formatVersion {
		return nil, corrupt("format version %d, want %d", r.Format, formatVersion)
	}
	if err := store.CheckID(r.ID); err != nil {
		return nil, corrupt("bad id: %v", err)
	}
	if r.Revision < 1 {
		return nil, corrupt("revision %d is not positive", r.Revision)
	}
	rec := &store.Record{
		ID:       r.ID,
		Revision: r.Revision,
		Current:  r.Current,
		Versions: make([]store.Version, len(r.Versions)),

		MinDecryptVersion: r.MinDecryptVersion,
	}
	if r.MinDecryptVersion > r.Current {
		return nil, corrupt("min decrypt version %d is above the current version %d", r.MinDecryptVersion, r.Current)
	}
	if r.Deleted != "" {
		deleted, err := time.Parse(time.RFC3339Nano, r.Deleted)
		if err != nil || deleted.IsZero() {
			return nil, corrupt("bad deleted time %q", r.Deleted)
		}
		rec.Deleted = deleted.UTC()
	}
	for i, vj := range r.Versions {
		created, err := time.Parse(time.RFC3339Nano, vj.Created)
		if err != nil {
			return nil, corrupt("version %d: bad created time: %v", vj.Number, err)
		}
		v := store.Version{
			Number:  vj.Number,
			Created: created.UTC(),
			Wrapped: make(map[string]store.Wrapped, len(vj.Wrapped)),
			Missing: vj.Missing,
			Seals:   vj.Seals,
		}
		if v.Retired, err = parseTime(vj.Retired); err != nil {
			return nil, corrupt("version %d: bad retired time %q", vj.Number, vj.Retired)
		}
		if v.Destroyed, err = parseTime(vj.Destroyed); err != nil {
			return nil, corrupt("version %d: bad destroyed time %q", vj.Number, vj.Destroyed)
		}
		if v.IsDestroyed() && len(vj.Wrapped) > 0 {
			return nil, corrupt("version %d is destroyed but holds wrapped copies", vj.Number)
		}
		for region, w := range vj.Wrapped {
			v.Wrapped[region] = store.Wrapped{KeyID: w.KeyID, Blob: w.Blob}
		}
		if b := vj.Branch; b != nil {
			if b.KeyID == "" {
				return nil, corrupt("version %d: branch wrap without a key id", vj.Number)
			}
			v.Branch = store.BranchWrap{KeyID: b.KeyID, Version: b.Version, Blob: b.Blob}
		}
		if err := v.CheckBranch(); err != nil {
			return nil, fmt.Errorf("decode key record: %w", err)
		}
		rec.Versions[i] = v
	}
	return rec, nil
}

// formatTime is t in RFC 3339 (UTC), or "" for the zero time.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// parseTime parses an optional RFC 3339 time: "" is the zero time; a present value must not be
// the zero time (it would read back as absent).
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, err
	}
	if t.IsZero() {
		return time.Time{}, errors.New("zero time")
	}
	return t.UTC(), nil
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("decode key record: %s: %w", fmt.Sprintf(format, args...), store.ErrCorrupt)
}

// tombstoneOf reports whether an encoded record is a tombstone, decoding only that field; an
// undecodable record counts as live (listing names it; reading it reports the corruption).
func tombstoneOf(data []byte) bool {
	var r struct {
		Deleted string `json:"deleted"`
	}
	return json.Unmarshal(data, &r) == nil && r.Deleted != ""
}
