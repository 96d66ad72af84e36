package access

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/rkms/rkms/keyring"
)

// Operation names, as they appear in admin.credentials[].allow and in audit records.
const (
	Read   = "read"
	Create = "create"
	Rotate = "rotate"
	Delete = "delete"
	List   = "list"
	// Rewrap moves ciphertexts to the current key version inside rkms (POST /v1/rewrap,
	// Rewrap) without the key or the plaintext leaving it: narrower than read, which hands out
	// the raw key. It is what a re-encryption job after a rotation should be given.
	Rewrap = "rewrap"
)

// Operations are every operation name, in the order documentation lists them.
var Operations = []string{Read, Create, Rotate, Delete, List, Rewrap}

// Known reports whether op is one of [Operations].
func Known(op string) bool { return slices.Contains(Operations, op) }

// LegacyName is the name of the credential that the single admin token (admin.token_file or
// RKMS_ADMIN_TOKEN) stands for: it may do every operation on every id.
const LegacyName = "admin"

var nameRule = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// CheckName returns an error unless name is a valid credential name: 1 to 64 characters of
// A-Z a-z 0-9 . _ -, starting with a letter or digit (names are audit fields and metric labels).
func CheckName(name string) error {
	if !nameRule.MatchString(name) {
		return fmt.Errorf("must be 1 to 64 characters of A-Z a-z 0-9 . _ - starting with a letter or digit (got %q)", name)
	}
	return nil
}

// Principal is an authenticated caller: who it is and what it may do.
type Principal struct {
	// Name identifies the caller in audit records and metrics.
	Name string
	// Allow lists the operations it may do (names from Operations).
	Allow []string
	// IDPrefixes, when not empty, restricts it to key ids starting with one of them.
	IDPrefixes []string
}

// All returns a principal named name that may do every operation on every id.
func All(name string) Principal {
	return Principal{Name: name, Allow: slices.Clone(Operations)}
}

// Allows reports whether p may do op on the key id (for list, id is empty: only op counts).
func (p Principal) Allows(op, id string) bool {
	if !slices.Contains(p.Allow, op) {
		return false
	}
	return op == List && id == "" || p.Covers(id)
}

// Covers reports whether id is within p's id prefixes (always, when it has none). Branch keys
// (keyring.IsBranchKeyID: hierarchical mode's "_rkms.branch.<n>", each able to unwrap every
// tenant key under it) are covered only by a prefix that itself starts with
// keyring.BranchKeyPrefix: no credential for all ids, nor one for "_rkms.", reads, lists,
// rotates or deletes them unless it names them explicitly.
func (p Principal) Covers(id string) bool {
	branch := keyring.IsBranchKeyID(id)
	if len(p.IDPrefixes) == 0 {
		return !branch
	}
	for _, pre := range p.IDPrefixes {
		if strings.HasPrefix(id, pre) && (!branch || keyring.IsBranchKeyID(pre)) {
			return true
		}
	}
	return false
}
