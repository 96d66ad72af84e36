package access

import "testing"

func TestAllows(t *testing.T) {
	ops := Principal{Name: "ops", Allow: Operations}
	billing := Principal{Name: "billing", Allow: []string{Read, List}, IDPrefixes: []string{"tenant-", "shared/"}}
	none := Principal{Name: "none"}
	for _, tc := range []struct {
		p      Principal
		op, id string
		want   bool
	}{
		{ops, Read, "anything", true},
		{ops, Delete, "x", true},
		{ops, List, "", true},
		{billing, Read, "tenant-acme", true},
		{billing, Read, "shared/a", true},
		{billing, Read, "other", false},
		{billing, Read, "Tenant-acme", false}, // prefixes are case-sensitive
		{billing, Read, "", false},
		{billing, Rotate, "tenant-acme", false},
		{billing, Create, "tenant-acme", false},
		{billing, List, "", true},
		{billing, List, "other", false},
		{none, Read, "x", false},
		{All("admin"), Create, "x", true},
		{ops, "purge", "x", false},
		{ops, Rewrap, "x", true},
		{All("admin"), Rewrap, "x", true},
		{billing, Rewrap, "tenant-acme", false},
		{Principal{Name: "mig", Allow: []string{Rewrap}, IDPrefixes: []string{"tenant-"}}, Rewrap, "tenant-acme", true},
		{Principal{Name: "mig", Allow: []string{Rewrap}, IDPrefixes: []string{"tenant-"}}, Rewrap, "other", false},
		{Principal{Name: "mig", Allow: []string{Rewrap}}, Read, "x", false},
	} {
		if got := tc.p.Allows(tc.op, tc.id); got != tc.want {
			t.Errorf("%s may %s %q: %v, want %v", tc.p.Name, tc.op, tc.id, got, tc.want)
		}
	}
}

func TestCheckName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{{"ops", true}, {"billing-svc", true}, {"a.b_c-1", true}, {"", false}, {"-x", false}, {"has space", false},
		{"ä", false}, {string(make([]byte, 65)), false}} {
		if err := CheckName(tc.name); (err == nil) != tc.ok {
			t.Errorf("CheckName(%q) = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
	if !Known(List) || Known("admin") {
		t.Error("Known")
	}
}

// TestBranchKeysNeedExplicitPrefix: branch keys (hierarchical mode) unwrap every tenant under
// them, so no credential reaches them (read, delete, list, ...) unless one of its id prefixes
// names the branch prefix itself; an all-ids credential or one covering "_rkms." does not.
func TestBranchKeysNeedExplicitPrefix(t *testing.T) {
	id := "_rkms.branch.0"
	tests := []struct {
		name     string
		prefixes []string
		want     bool
	}{
		{"all ids", nil, false},
		{"empty prefix", []string{""}, false},
		{"reserved prefix", []string{"_rkms."}, false},
		{"underscore", []string{"_"}, false},
		{"explicit", []string{"_rkms.branch."}, true},
		{"explicit one", []string{"_rkms.branch.0"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := Principal{Name: "x", Allow: Operations, IDPrefixes: tc.prefixes}
			for _, op := range Operations {
				if got := p.Allows(op, id); got != tc.want {
					t.Errorf("Allows(%s, %s) = %v, want %v", op, id, got, tc.want)
				}
			}
			if !All("a").Covers("tenant") || All("a").Covers(id) {
				t.Error("All covers tenants and not branch keys")
			}
		})
	}
}
