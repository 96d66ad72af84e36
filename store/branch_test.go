package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/rkms/rkms/store"
)

// TestCheckBranch: a version is wrapped one way only, and a branch wrap is complete.
func TestCheckBranch(t *testing.T) {
	ok := store.BranchWrap{KeyID: "_rkms.branch.0", Version: 1, Blob: []byte{1}}
	kms := map[string]store.Wrapped{"r1": {KeyID: "k", Blob: []byte{1}}}
	tests := []struct {
		name string
		v    store.Version
		bad  bool
	}{
		{"direct", store.Version{Number: 1, Wrapped: kms}, false},
		{"branch", store.Version{Number: 1, Branch: ok}, false},
		{"both", store.Version{Number: 1, Wrapped: kms, Branch: ok}, true},
		{"version 0", store.Version{Number: 1, Branch: store.BranchWrap{KeyID: "b", Blob: []byte{1}}}, true},
		{"no blob", store.Version{Number: 1, Branch: store.BranchWrap{KeyID: "b", Version: 1}}, true},
		{"no key id", store.Version{Number: 1, Branch: store.BranchWrap{Version: 1, Blob: []byte{1}}}, true},
		{"destroyed", store.Version{Number: 1, Branch: ok, Destroyed: time.Unix(1, 0)}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.v.CheckBranch()
			if tc.bad != (err != nil) || (err != nil && !errors.Is(err, store.ErrCorrupt)) {
				t.Fatalf("CheckBranch = %v, want error %v wrapping ErrCorrupt", err, tc.bad)
			}
		})
	}
}

// TestCloneBranch: Clone copies the branch blob, so a clone never shares it.
func TestCloneBranch(t *testing.T) {
	r := &store.Record{ID: "a", Current: 1, Versions: []store.Version{{Number: 1,
		Branch: store.BranchWrap{KeyID: "_rkms.branch.0", Version: 2, Blob: []byte{1, 2}}}}}
	c := r.Clone()
	c.Versions[0].Branch.Blob[0] = 9
	if r.Versions[0].Branch.Blob[0] != 1 || c.Versions[0].Branch.Version != 2 {
		t.Fatal("clone shares the branch blob or lost the version")
	}
}
