package storetest

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rkms/rkms/store"
)

// allBytes is a blob holding every byte value, including NUL and invalid UTF-8 sequences, so an
// encoding that treats blobs as text is caught.
func allBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// sampleRecord returns a record with several versions, regions and blob shapes. seed varies the
// content so concurrent writers produce distinguishable records.
func sampleRecord(id string, seed int) *store.Record {
	created := time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)
	big := bytes.Repeat([]byte{0x00, 0xff, 0x80, byte(seed)}, 1024) // 4 KiB
	return &store.Record{
		ID:      id,
		Current: 2,
		Versions: []store.Version{
			{
				Number:  1,
				Created: created,
				Wrapped: map[string]store.Wrapped{
					"us-east-1": {KeyID: "arn:aws:kms:us-east-1:111122223333:key/00000001-0000-4000-8000-000000000001", Blob: allBytes()},
					"eu-west-1": {KeyID: "alias/rkms", Blob: []byte{0, 0, 0, byte(seed)}},
				},
			},
			{
				Number:  2,
				Created: created.Add(90 * 24 * time.Hour),
				Wrapped: map[string]store.Wrapped{
					"us-east-1": {KeyID: "k1", Blob: big},
				},
				Missing: []string{"eu-west-1", "ap-south-1"},
				Seals:   1<<63 + uint64(seed), // above int64: a store must keep all 64 bits
			},
		},
	}
}

// lifecycleRecord returns a record using every version lifecycle field: a destroyed version (no
// copies), a retired one, the current one with a seal count, and a min decrypt version.
func lifecycleRecord(id string) *store.Record {
	rec := sampleRecord(id, 7)
	created := rec.Versions[0].Created
	rec.Versions[0].Retired = created.Add(time.Hour)
	rec.Versions[0].Destroyed = created.Add(8 * 24 * time.Hour)
	rec.Versions[0].Wrapped = map[string]store.Wrapped{}
	rec.Versions[1].Retired = created.Add(100 * 24 * time.Hour)
	rec.Versions = append(rec.Versions, store.Version{
		Number:  3,
		Created: created.Add(100 * 24 * time.Hour),
		Wrapped: map[string]store.Wrapped{"us-east-1": {KeyID: "k1", Blob: []byte{3}}},
		Seals:   1_000_000,
	})
	rec.Versions = append(rec.Versions, store.Version{
		Number:  4,
		Created: created.Add(101 * 24 * time.Hour),
		Wrapped: map[string]store.Wrapped{},
		Branch:  store.BranchWrap{KeyID: "_rkms.branch.0", Version: 1<<32 - 1, Blob: allBytes()},
	})
	rec.Current = 4
	rec.MinDecryptVersion = 3
	return rec
}

// diff describes how got differs from want, or returns "" when they are equal. Revisions are
// compared too; times by instant (stores may return them in UTC); nil and empty collections are
// equal (an encoding need not tell them apart).
func diff(want, got *store.Record) string {
	switch {
	case want == nil && got == nil:
		return ""
	case want == nil || got == nil:
		return fmt.Sprintf("want %v, got %v", want != nil, got != nil)
	}
	var d []string
	if want.ID != got.ID {
		d = append(d, fmt.Sprintf("ID: want %q, got %q", want.ID, got.ID))
	}
	if want.Revision != got.Revision {
		d = append(d, fmt.Sprintf("Revision: want %d, got %d", want.Revision, got.Revision))
	}
	if !want.Deleted.Equal(got.Deleted) {
		d = append(d, fmt.Sprintf("Deleted: want %v, got %v", want.Deleted, got.Deleted))
	}
	if want.Current != got.Current {
		d = append(d, fmt.Sprintf("Current: want %d, got %d", want.Current, got.Current))
	}
	if want.MinDecryptVersion != got.MinDecryptVersion {
		d = append(d, fmt.Sprintf("MinDecryptVersion: want %d, got %d", want.MinDecryptVersion, got.MinDecryptVersion))
	}
	if len(want.Versions) != len(got.Versions) {
		d = append(d, fmt.Sprintf("len(Versions): want %d, got %d", len(want.Versions), len(got.Versions)))
		return strings.Join(d, "; ")
	}
	for i, wv := range want.Versions {
		gv := got.Versions[i]
		if wv.Number != gv.Number {
			d = append(d, fmt.Sprintf("Versions[%d].Number: want %d, got %d", i, wv.Number, gv.Number))
		}
		if !wv.Created.Equal(gv.Created) {
			d = append(d, fmt.Sprintf("Versions[%d].Created: want %v, got %v", i, wv.Created, gv.Created))
		}
		if !wv.Retired.Equal(gv.Retired) || !wv.Destroyed.Equal(gv.Destroyed) || wv.Seals != gv.Seals {
			d = append(d, fmt.Sprintf("Versions[%d] lifecycle: want retired %v destroyed %v seals %d, got %v %v %d",
				i, wv.Retired, wv.Destroyed, wv.Seals, gv.Retired, gv.Destroyed, gv.Seals))
		}
		if wv.Branch.KeyID != gv.Branch.KeyID || wv.Branch.Version != gv.Branch.Version || !bytes.Equal(wv.Branch.Blob, gv.Branch.Blob) {
			d = append(d, fmt.Sprintf("Versions[%d].Branch: want %q v%d %x, got %q v%d %x", i,
				wv.Branch.KeyID, wv.Branch.Version, head(wv.Branch.Blob), gv.Branch.KeyID, gv.Branch.Version, head(gv.Branch.Blob)))
		}
		if !slices.Equal(wv.Missing, gv.Missing) {
			d = append(d, fmt.Sprintf("Versions[%d].Missing: want %q, got %q", i, wv.Missing, gv.Missing))
		}
		if len(wv.Wrapped) != len(gv.Wrapped) {
			d = append(d, fmt.Sprintf("len(Versions[%d].Wrapped): want %d, got %d", i, len(wv.Wrapped), len(gv.Wrapped)))
		}
		for region, ww := range wv.Wrapped {
			gw, ok := gv.Wrapped[region]
			switch {
			case !ok:
				d = append(d, fmt.Sprintf("Versions[%d].Wrapped[%q]: missing", i, region))
			case ww.KeyID != gw.KeyID:
				d = append(d, fmt.Sprintf("Versions[%d].Wrapped[%q].KeyID: want %q, got %q", i, region, ww.KeyID, gw.KeyID))
			case !bytes.Equal(ww.Blob, gw.Blob):
				d = append(d, fmt.Sprintf("Versions[%d].Wrapped[%q].Blob: want %d bytes %x..., got %d bytes %x...",
					i, region, len(ww.Blob), head(ww.Blob), len(gw.Blob), head(gw.Blob)))
			}
		}
	}
	return strings.Join(d, "; ")
}

func head(b []byte) []byte {
	if len(b) > 8 {
		return b[:8]
	}
	return b
}

// requireEqual fails t unless got equals want (see diff).
func requireEqual(t *testing.T, want, got *store.Record) {
	t.Helper()
	if d := diff(want, got); d != "" {
		t.Fatalf("record mismatch: %s", d)
	}
}

// withRevision returns a copy of r with Revision set to rev.
func withRevision(r *store.Record, rev int64) *store.Record {
	c := r.Clone()
	c.Revision = rev
	return c
}

// GoldenRecord is the record every backend's golden encoding file (testdata) holds: two
// versions, binary blobs with zero and high bytes, a missing region and nanosecond timestamps.
func GoldenRecord() *store.Record {
	return &store.Record{
		ID:       "payments/card",
		Revision: 3,
		Current:  2,
		Versions: []store.Version{
			{
				Number:  1,
				Created: time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC),
				Wrapped: map[string]store.Wrapped{
					"us-east-1": {KeyID: "arn:aws:kms:us-east-1:111122223333:key/00000001-0000-4000-8000-000000000001", Blob: []byte{0x01, 0x02, 0x03, 0x00, 0xff}},
					"eu-west-1": {KeyID: "arn:aws:kms:eu-west-1:111122223333:key/00000002-0000-4000-8000-000000000002", Blob: []byte("\xfe\xed")},
				},
			},
			{
				Number:  2,
				Created: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC),
				Wrapped: map[string]store.Wrapped{
					"us-east-1": {KeyID: "arn:aws:kms:us-east-1:111122223333:key/00000001-0000-4000-8000-000000000001", Blob: []byte{0xaa}},
				},
				Missing: []string{"eu-west-1"},
			},
		},
	}
}

// GoldenLifecycleRecord is the record of every backend's second golden file: [GoldenRecord] with
// the version lifecycle fields set (a destroyed version without copies, a retired one, a seal
// count and a min decrypt version). The first golden file, without them, pins that records
// written before lifecycle existed still read.
func GoldenLifecycleRecord() *store.Record {
	rec := GoldenRecord()
	rec.Versions[0].Retired = time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC)
	rec.Versions[0].Destroyed = time.Date(2025, 6, 9, 0, 0, 1, 5, time.UTC)
	rec.Versions[0].Wrapped = map[string]store.Wrapped{}
	rec.Versions[1].Seals = 18446744073709551615
	rec.MinDecryptVersion = 2
	return rec
}

// GoldenBranchRecord is the record of every backend's third golden file: a record mixing a
// version wrapped by KMS regions (direct mode) and one wrapped under a branch key
// (hierarchical mode), the current one. It pins that both kinds read side by side.
func GoldenBranchRecord() *store.Record {
	rec := GoldenRecord()
	rec.Versions = append(rec.Versions, store.Version{
		Number:  3,
		Created: time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC),
		Wrapped: map[string]store.Wrapped{},
		Branch:  store.BranchWrap{KeyID: "_rkms.branch.3", Version: 2, Blob: []byte{0x01, 0x00, 0xff, 0xfe}},
	})
	rec.Current = 3
	return rec
}
