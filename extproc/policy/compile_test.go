package policy

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
	var pc Config
	if err := yaml.Unmarshal([]byte(src), &pc); err != nil {
		t.Fatal(err)
	}
	want := Config{Name: "p", Match: Match{PathPrefix: "/a", Methods: []string{"get", "POST"}}, KeyID: "k-{header:X-Tenant}",
		Request:  Direction{Encrypt: []Field{{Path: "$.ssn"}, {Path: "$.cards[*]", Label: "card"}}},
		Response: Direction{Decrypt: []Field{{Path: "$.ssn"}}}, Mode: "deterministic", CaseSensitive: true}
	if got, exp := yamlString(t, pc), yamlString(t, want); got != exp {
		t.Fatalf("decoded\n%s\nwant\n%s", got, exp)
	}
	ps, err := Compile([]Config{pc})
	if err != nil {
		t.Fatal(err)
	}
	p := ps.Policies()[0]
	for _, tc := range []struct {
		method, path string
		want         bool
	}{
		{"GET", "/a", true}, {"POST", "/a/b", true}, {"PUT", "/a", false}, {"GET", "/b", false}, {"GET", "/", false},
	} {
		got, _, err := ps.Select("", Request{Method: tc.method, Path: tc.path})
		if (got == p) != tc.want || err != nil {
			t.Errorf("match(%s %s) = %v, want %v", tc.method, tc.path, got, tc.want)
		}
	}
	if p.KeyID().String() != "k-{header:x-tenant}" || !p.Request().Encrypts() || p.Response().Encrypts() {
		t.Errorf("compiled policy: key id %s, request encrypts %v, response encrypts %v", p.KeyID(), p.Request().Encrypts(), p.Response().Encrypts())
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
		var pc Config
		if err := yaml.Unmarshal([]byte(src), &pc); err == nil {
			t.Errorf("%s: decoded without error", src)
		}
	}
}

func TestCheckPolicies(t *testing.T) {
	ok := func() Config {
		return Config{Name: "p", KeyID: "k", Request: Direction{Encrypt: []Field{{Path: "$.a"}}}}
	}
	with := func(f func(*Config)) []Config { p := ok(); f(&p); return []Config{p} }
	for _, tc := range []struct {
		name     string
		policies []Config
		want     []string // substrings of the error, each naming the policy and field
	}{
		{"valid", []Config{ok()}, nil},
		{"no name", with(func(p *Config) { p.Name = "" }), []string{"policies[0]: name:"}},
		{"bad name", with(func(p *Config) { p.Name = "a b" }), []string{`policy "a b": name:`}},
		{"duplicate", []Config{ok(), ok()}, []string{`policy "p": name: duplicate`}},
		{"prefix", with(func(p *Config) { p.Match.PathPrefix = "a" }), []string{`policy "p": match.path_prefix`}},
		{"prefix with query", with(func(p *Config) { p.Match.PathPrefix = "/a?b" }), []string{"match.path_prefix"}},
		{"method", with(func(p *Config) { p.Match.Methods = []string{"GET", "P T"} }), []string{"match.methods[1]"}},
		{"mode", with(func(p *Config) { p.Mode = "fast" }), []string{`policy "p": mode:`}},
		{"no key id", with(func(p *Config) { p.KeyID = "" }), []string{"key_id: required"}},
		{"bad key id", with(func(p *Config) { p.KeyID = "a b" }), []string{"key_id: literal"}},
		{"bad placeholder", with(func(p *Config) { p.KeyID = "{cookie:x}" }), []string{"key_id: placeholder"}},
		{"bad selector", with(func(p *Config) { p.Request.Encrypt[0].Path = "$.a[" }), []string{`request.encrypt[0]: selector "$.a["`}},
		{"no label", with(func(p *Config) { p.Response.Decrypt = []Field{{Path: "$.a[*]"}} }), []string{"response.decrypt[0]: selector \"$.a[*]\" has no default label"}},
		{"label too long", with(func(p *Config) { p.Request.Encrypt[0].Label = strings.Repeat("l", 300) }), []string{"request.encrypt[0]: label"}},
		{"listed twice", with(func(p *Config) { p.Request.Decrypt = []Field{{Path: "$['a']"}} }), []string{"request.decrypt[0]: selector \"$['a']\" is already listed at request.encrypt[0]"}},
		{"no fields", with(func(p *Config) { p.Request = Direction{} }), []string{"no fields"}},
		{"create on_demand", with(func(p *Config) { p.Create = "on_demand" }), nil},
		{"create admin_only", with(func(p *Config) { p.Create = "admin_only" }), nil},
		{"create unknown", with(func(p *Config) { p.Create = "never" }), []string{`policy "p": create: "never" is not "on_demand" or "admin_only"`}},
		{"create case", with(func(p *Config) { p.Create = "Admin_Only" }), []string{`policy "p": create:`}},
		{"stream request", with(func(p *Config) { p.Request.Stream = true; p.MaxStreamBytes = 1 << 20 }), nil},
		{"stream key id from body", with(func(p *Config) { p.Request.Stream = true; p.KeyID = "{json:$.tenant}" }), []string{`policy "p": key_id: a streaming policy`}},
		{"stream context from body", with(func(p *Config) { p.Response.Stream = true; p.Context = "{json:$.id}" }), []string{`policy "p": context: a streaming policy`}},
		{"key id from body without stream", with(func(p *Config) { p.KeyID = "{json:$.tenant}" }), nil},
		{"stream with allow", with(func(p *Config) { p.Request.Stream = true; p.Allow = []string{"$.b.a"} }), []string{"allow: not supported with request.stream"}},
		{"max_stream_bytes negative", with(func(p *Config) { p.MaxStreamBytes = -1 }), []string{"max_stream_bytes: -1"}},
		{"max_stream_bytes too large", with(func(p *Config) { p.MaxStreamBytes = MaxMaxStreamBytes + 1 }), []string{"max_stream_bytes:"}},
		{"compressed decompress", with(func(p *Config) { p.Request.Compressed = "decompress" }), nil},
		{"compressed refuse", with(func(p *Config) { p.Request.Compressed = "refuse" }), nil},
		{"compressed unknown", with(func(p *Config) { p.Request.Compressed = "pass" }), []string{`policy "p": request.compressed: "pass" is not "decompress" or "refuse"`}},
		{"compressed on responses", with(func(p *Config) { p.Response.Compressed = "refuse" }), []string{`response.compressed: only requests take it`}},
		{"several problems reported together", with(func(p *Config) { p.Mode = "x"; p.KeyID = "" }), []string{"mode:", "key_id:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(tc.policies)
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
		})
	}
}

// TestStreamSettings: stream is per direction and off by default; max_stream_bytes defaults to
// DefaultMaxStreamBytes.
func TestStreamSettings(t *testing.T) {
	for _, tc := range []struct {
		yaml           string
		request, resp  bool
		maxStreamBytes int64
	}{
		{"request: {encrypt: [$.a]}\n", false, false, DefaultMaxStreamBytes},
		{"request: {stream: true, encrypt: [$.a]}\nmax_stream_bytes: 1000\n", true, false, 1000},
		{"request: {encrypt: [$.a]}\nresponse: {stream: true, decrypt: [$.a]}\n", false, true, DefaultMaxStreamBytes},
	} {
		var pc Config
		if err := yaml.Unmarshal([]byte("name: p\nkey_id: k\n"+tc.yaml), &pc); err != nil {
			t.Fatal(err)
		}
		set, err := Compile([]Config{pc})
		if err != nil {
			t.Fatal(err)
		}
		p := set.Policies()[0]
		if p.Streams(false) != tc.request || p.Streams(true) != tc.resp || p.MaxStreamBytes() != tc.maxStreamBytes {
			t.Errorf("%q: streams %v/%v, max %d; want %v/%v, %d", tc.yaml, p.Streams(false), p.Streams(true), p.MaxStreamBytes(), tc.request, tc.resp, tc.maxStreamBytes)
		}
	}
}

// TestCreateMode: create defaults to on_demand; admin_only is carried into the compiled policy.
func TestCreateMode(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want CreateMode
		name string
	}{
		{"", CreateOnDemand, "on_demand"},
		{"create: on_demand\n", CreateOnDemand, "on_demand"},
		{"create: admin_only\n", CreateAdminOnly, "admin_only"},
	} {
		var pc Config
		src := "name: p\nkey_id: k\nrequest: {encrypt: [$.a]}\n" + tc.yaml
		if err := yaml.Unmarshal([]byte(src), &pc); err != nil {
			t.Fatal(err)
		}
		ps, err := Compile([]Config{pc})
		if err != nil {
			t.Fatal(err)
		}
		if got := ps.Policies()[0].Create(); got != tc.want || got.String() != tc.name {
			t.Errorf("%q: create mode %v, want %v", tc.yaml, got, tc.name)
		}
	}
}

// TestCompressedRequests: request.compressed defaults to decompress; refuse is carried into the
// compiled policy.
func TestCompressedRequests(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want bool
	}{
		{"request: {encrypt: [$.a]}\n", false},
		{"request: {encrypt: [$.a], compressed: decompress}\n", false},
		{"request: {encrypt: [$.a], compressed: refuse}\n", true},
	} {
		var pc Config
		if err := yaml.Unmarshal([]byte("name: p\nkey_id: k\n"+tc.yaml), &pc); err != nil {
			t.Fatal(err)
		}
		ps, err := Compile([]Config{pc})
		if err != nil {
			t.Fatal(err)
		}
		if got := ps.Policies()[0].RefusesCompressedRequests(); got != tc.want {
			t.Errorf("%q: refuses compressed requests %v, want %v", tc.yaml, got, tc.want)
		}
	}
}
