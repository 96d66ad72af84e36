package keyring

import (
	"fmt"
	"strings"
)

// TenantKeys gives some key ids their own KMS keys (bring your own key): their data keys are
// wrapped directly under these regions, as in direct mode, whatever Options.Mode says, and never
// under the shared regions or a branch key. When all of them are down, creating or opening such
// a key fails (ErrUnavailable): it never falls back to the shared keys.
type TenantKeys struct {
	// IDs are exact key ids; IDPrefixes match ids that start with one of them. The first
	// TenantKeys that matches an id wins.
	IDs        []string
	IDPrefixes []string
	// Regions are the tenant's KMS regions, in order of preference. Their names must be unique
	// among every region of the keyring (a record's copies name them).
	Regions []Region
	// MinRegions is how many copies a new version needs (0: a majority of Regions).
	MinRegions int
}

// regionSet is the regions one kind of key is wrapped under and the copies a version needs.
type regionSet struct {
	regions    []*regionState
	minRegions int
}

// tenantSet is a TenantKeys resolved to region states.
type tenantSet struct {
	ids      map[string]bool
	prefixes []string
	set      *regionSet
}

// tenantSet returns the region set of id's own KMS keys, or nil.
func (k *Keyring) tenantSet(id string) *regionSet {
	for _, t := range k.tenants {
		if t.ids[id] {
			return t.set
		}
		for _, p := range t.prefixes {
			if strings.HasPrefix(id, p) {
				return t.set
			}
		}
	}
	return nil
}

// setFor returns the regions new versions of id are wrapped under by KMS.
func (k *Keyring) setFor(id string) *regionSet {
	if s := k.tenantSet(id); s != nil {
		return s
	}
	return k.shared
}

// addTenants registers each tenant's regions (names unique among all regions).
func (k *Keyring) addTenants(tenants []TenantKeys, seen map[string]bool) error {
	for i, t := range tenants {
		if len(t.Regions) == 0 || len(t.IDs)+len(t.IDPrefixes) == 0 {
			return fmt.Errorf("tenant keys %d: needs ids or id prefixes, and regions", i)
		}
		if err := CheckMinRegions(t.MinRegions, len(t.Regions)); err != nil {
			return fmt.Errorf("tenant keys %d: min regions: %w", i, err)
		}
		ts := tenantSet{ids: map[string]bool{}, prefixes: t.IDPrefixes, set: &regionSet{minRegions: t.MinRegions}}
		if ts.set.minRegions == 0 {
			ts.set.minRegions = DefaultMinRegions(len(t.Regions))
		}
		for _, id := range t.IDs {
			if err := ValidateID(id); err != nil {
				return fmt.Errorf("tenant keys %d: %w", i, err)
			}
			ts.ids[id] = true
		}
		for _, p := range t.IDPrefixes {
			if err := ValidateID(p); err != nil {
				return fmt.Errorf("tenant keys %d: id prefix: %w", i, err)
			}
		}
		for j, r := range t.Regions {
			rs, err := k.register(r, seen)
			if err != nil {
				return fmt.Errorf("tenant keys %d: region %d: %w", i, j, err)
			}
			ts.set.regions = append(ts.set.regions, rs)
		}
		k.tenants = append(k.tenants, ts)
	}
	return nil
}

// register adds r to the registry of every region (breakers, probes, stats) and returns its state.
func (k *Keyring) register(r Region, seen map[string]bool) (*regionState, error) {
	if r == nil {
		return nil, fmt.Errorf("region is nil")
	}
	name := r.Name()
	if name == "" || seen[name] {
		return nil, fmt.Errorf("name %q is empty or repeated", name)
	}
	seen[name] = true
	rs := &regionState{Region: r, name: name}
	k.h.regions = append(k.h.regions, rs)
	return rs, nil
}
