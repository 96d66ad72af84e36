package extproc

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestPolicyYAML(t *testing.T) {
	src := `
name: p
match: {path_prefix: /a, methods: [get, POST]}
key_id: "k-{header:X-Tenant}"
request:
  encrypt: ["$.ssn", {path: "$.cards[*]", label: card}]
response:
  decrypt: [{path: "$.ssn"}]
mode: deterministic
case_sensitive: true
`
	var pc PolicyConfig
	if err := yaml.Unmarshal([]byte(src), &pc); err != nil {
		t.Fatal(err)
	}
	want := PolicyConfig{Name: "p", Match: MatchConfig{PathPrefix: "/a", Methods: []string{"get", "POST"}}, KeyID: "k-{header:X-Tenant}",
		Request:  DirectionConfig{Encrypt: []FieldConfig{{Path: "$.ssn"}, {Path: "$.cards[*]", Label: "card"}}},
		Response: DirectionConfig{Decrypt: []FieldConfig{{Path: "$.ssn"}}}, Mode: "deterministic", CaseSensitive: true}
	if got, exp := yamlString(t, pc), yamlString(t, want); got != exp {
		t.Fatalf("decoded\n%s\nwant\n%s", got, exp)
	}
	ps, err := compilePolicies([]PolicyConfig{pc})
	if err != nil {
		t.Fatal(err)
	}
	p := ps[0]
	for _, tc := range []struct {
		method, path string
		want         bool
	}{
		{"GET", "/a", true}, {"POST", "/a/b", true}, {"PUT", "/a", false}, {"GET", "/b", false}, {"GET", "/", false},
	} {
		if got := p.match(tc.method, tc.path); got != tc.want {
			t.Errorf("match(%s %s) = %v, want %v", tc.method, tc.path, got, tc.want)
		}
	}
	if p.keyID.String() != "k-{header:x-tenant}" || !p.request.encrypts || p.response.encrypts {
		t.Errorf("compiled policy: key id %s, request encrypts %v, response encrypts %v", p.keyID, p.request.encrypts, p.response.encrypts)
	}
}

func yamlString(t *testing.T, v any) string {
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPolicyYAMLErrors(t *testing.T) {
	for _, src := range []string{
		`request: {encrypt: [{path: "$.a", lable: x}]}`,
		`request: {encrypt: [[1]]}`,
	} {
		var pc PolicyConfig
		if err := yaml.Unmarshal([]byte(src), &pc); err == nil {
			t.Errorf("%s: decoded without error", src)
		}
	}
}

func TestCheckPolicies(t *testing.T) {
	ok := func() PolicyConfig {
		return PolicyConfig{Name: "p", KeyID: "k", Request: DirectionConfig{Encrypt: []FieldConfig{{Path: "$.a"}}}}
	}
	with := func(f func(*PolicyConfig)) []PolicyConfig { p := ok(); f(&p); return []PolicyConfig{p} }
	for _, tc := range []struct {
		name     string
		policies []PolicyConfig
		want     []string // substrings of the error, each naming the policy and field
	}{
		{"valid", []PolicyConfig{ok()}, nil},
		{"no name", with(func(p *PolicyConfig) { p.Name = "" }), []string{"policies[0]: name:"}},
		{"bad name", with(func(p *PolicyConfig) { p.Name = "a b" }), []string{`policy "a b": name:`}},
		{"duplicate", []PolicyConfig{ok(), ok()}, []string{`policy "p": name: duplicate`}},
		{"prefix", with(func(p *PolicyConfig) { p.Match.PathPrefix = "a" }), []string{`policy "p": match.path_prefix`}},
		{"prefix with query", with(func(p *PolicyConfig) { p.Match.PathPrefix = "/a?b" }), []string{"match.path_prefix"}},
		{"method", with(func(p *PolicyConfig) { p.Match.Methods = []string{"GET", "P T"} }), []string{"match.methods[1]"}},
		{"mode", with(func(p *PolicyConfig) { p.Mode = "fast" }), []string{`policy "p": mode:`}},
		{"no key id", with(func(p *PolicyConfig) { p.KeyID = "" }), []string{"key_id: required"}},
		{"bad key id", with(func(p *PolicyConfig) { p.KeyID = "a b" }), []string{"key_id: literal"}},
		{"bad placeholder", with(func(p *PolicyConfig) { p.KeyID = "{cookie:x}" }), []string{"key_id: placeholder"}},
		{"bad selector", with(func(p *PolicyConfig) { p.Request.Encrypt[0].Path = "$.a[" }), []string{`request.encrypt[0]: selector "$.a["`}},
		{"no label", with(func(p *PolicyConfig) { p.Response.Decrypt = []FieldConfig{{Path: "$.a[*]"}} }), []string{"response.decrypt[0]: selector \"$.a[*]\" has no default label"}},
		{"label too long", with(func(p *PolicyConfig) { p.Request.Encrypt[0].Label = strings.Repeat("l", 300) }), []string{"request.encrypt[0]: label"}},
		{"listed twice", with(func(p *PolicyConfig) { p.Request.Decrypt = []FieldConfig{{Path: "$['a']"}} }), []string{"request.decrypt[0]: selector \"$['a']\" is already listed at request.encrypt[0]"}},
		{"no fields", with(func(p *PolicyConfig) { p.Request = DirectionConfig{} }), []string{"no fields"}},
		{"several problems reported together", with(func(p *PolicyConfig) { p.Mode = "x"; p.KeyID = "" }), []string{"mode:", "key_id:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckPolicies(tc.policies)
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if _, err := NewServer(tc.policies, newFakeKeys(), Options{}); err == nil {
				t.Error("NewServer accepted what CheckPolicies refused")
			}
		})
	}
}

func TestNewServerOptions(t *testing.T) {
	if _, err := NewServer(nil, nil, Options{}); err == nil {
		t.Error("nil keys accepted")
	}
	if _, err := NewServer(nil, newFakeKeys(), Options{MaxBodyBytes: -1}); err == nil {
		t.Error("negative MaxBodyBytes accepted")
	}
	s, err := NewServer(nil, newFakeKeys(), Options{})
	if err != nil || s.opts.MaxBodyBytes != DefaultMaxBodyBytes || s.opts.KeyTimeout != DefaultKeyTimeout {
		t.Errorf("defaults: %+v, %v", s.opts, err)
	}
}
