package policy

import (
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/rkms/rkms/extproc/blindindex"
)

const indexedYAML = `
name: people
match: {path_prefix: /people}
key_id: "tenant-{header:x-tenant-id}"
request:
  encrypt:
    - {path: "$..ssn", index: {name: ssn_idx, bits: 64, normalize: [trim, digits]}}
    - "$.email"
  index_query: [{param: ssn, index: ssn_idx}]
response:
  decrypt: ["$.ssn", "$.email"]
`

func TestIndexCompiles(t *testing.T) {
	var c Config
	if err := yaml.Unmarshal([]byte(indexedYAML), &c); err != nil {
		t.Fatal(err)
	}
	set, err := Compile([]Config{c})
	if err != nil {
		t.Fatal(err)
	}
	p := set.Policies()[0]
	var spec *blindindex.Spec
	for i := range p.Request().Plan().Fields() {
		if s := p.Request().Index(&p.Request().Plan().Fields()[i]); s != nil {
			spec = s
		}
	}
	if spec == nil || spec.Name != "ssn_idx" || spec.Bits != 64 || spec.Norm != blindindex.Trim|blindindex.Digits {
		t.Fatalf("spec %+v", spec)
	}
	if q := p.IndexQueries(); len(q) != 1 || q[0].Param != "ssn" || q[0].Spec != spec {
		t.Errorf("index queries %+v", q)
	}
	// Both directions remove $..ssn_idx.
	for _, fs := range []*Fields{p.Request(), p.Response()} {
		removes := 0
		for _, f := range fs.Plan().Fields() {
			if f.Remove && f.Selector.String() == "$..ssn_idx" {
				removes++
			}
		}
		if removes != 1 {
			t.Errorf("plan fields %v: want one removal of $..ssn_idx", fs.Plan().Fields())
		}
	}
	c.Request.Encrypt[0].Index.Bits = 0
	set, _ = Compile([]Config{c})
	if q := set.Policies()[0].IndexQueries(); q[0].Spec.Bits != blindindex.DefaultBits {
		t.Errorf("default bits %d", q[0].Spec.Bits)
	}
}

func TestIndexErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(c *Config)
		want string
	}{
		{"bad name", func(c *Config) { c.Request.Encrypt[0].Index.Name = "ssn idx" }, "request.encrypt[0].index.name: "},
		{"empty name", func(c *Config) { c.Request.Encrypt[0].Index.Name = "" }, "request.encrypt[0].index.name: "},
		{"bits", func(c *Config) { c.Request.Encrypt[0].Index.Bits = 12 }, "request.encrypt[0].index.bits: 12 is not a multiple of 8"},
		{"bits high", func(c *Config) { c.Request.Encrypt[0].Index.Bits = 264 }, "request.encrypt[0].index.bits"},
		{"normalize", func(c *Config) { c.Request.Encrypt[0].Index.Normalize = []string{"upper"} }, "request.encrypt[0].index.normalize[0]: unknown"},
		{"array element", func(c *Config) {
			c.Request.Encrypt[0].Path, c.Request.Encrypt[0].Label = "$.ssns[*]", "ssn"
			c.Response.Decrypt[0].Path, c.Response.Decrypt[0].Label = "$.ssns[*]", "ssn"
		},
			"request.encrypt[0].index: selector $.ssns[*] must end in a member name"},
		{"name of a field", func(c *Config) { c.Request.Encrypt[0].Index.Name = "EMAIL" }, "request.encrypt[0].index.name: \"EMAIL\" is already the name or label"},
		{"name of its own field", func(c *Config) { c.Request.Encrypt[0].Index.Name = "ssn" }, "already the name or label"},
		{"twice", func(c *Config) {
			c.Request.Encrypt[1].Index = &Index{Name: "ssn_idx"}
		}, "request.encrypt[1].index.name: \"ssn_idx\" is already"},
		{"response", func(c *Config) { c.Response.Decrypt[0].Index = &Index{Name: "x_idx"} }, "response.decrypt[0].index: only request.encrypt"},
		{"query unknown index", func(c *Config) { c.Request.IndexQuery[0].Index = "nope" }, "request.index_query[0].index: \"nope\" is not an index"},
		{"query param", func(c *Config) { c.Request.IndexQuery[0].Param = "a b" }, "request.index_query[0].param"},
		{"query key id from body", func(c *Config) { c.KeyID = "t-{json:$.tenant}" }, "request.index_query[0]: the key id reads the request body"},
		{"query in response", func(c *Config) { c.Response.IndexQuery = []IndexQuery{{Param: "a", Index: "ssn_idx"}} }, "response.index_query"},
		{"reserved key id", func(c *Config) { c.KeyID = "_rkms.index-root" }, "key_id: invalid key id: the prefix _rkms. is reserved"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Config
			if err := yaml.Unmarshal([]byte(indexedYAML), &c); err != nil {
				t.Fatal(err)
			}
			tc.edit(&c)
			_, err := Compile([]Config{c})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	var c Config
	err := yaml.Unmarshal([]byte("request: {encrypt: [{path: $.a, indx: {name: a}}]}"), &c)
	if err == nil || !strings.Contains(err.Error(), "want path, label, index") {
		t.Errorf("unknown key: %v", err)
	}
}

func TestRewriteQuery(t *testing.T) {
	var c Config
	if err := yaml.Unmarshal([]byte(indexedYAML), &c); err != nil {
		t.Fatal(err)
	}
	set, err := Compile([]Config{c})
	if err != nil {
		t.Fatal(err)
	}
	p := set.Policies()[0]
	idx := func(spec *blindindex.Spec, v string) (string, error) { return "<" + v + ">", nil }
	for in, want := range map[string]string{
		"/people":                     "/people",
		"/people?":                    "/people?",
		"/people?x=1":                 "/people?x=1",
		"/people?ssn=1-2":             "/people?ssn_idx=<1-2>",
		"/people?a=%20&SSN=a+b%2B&c=": "/people?a=%20&ssn_idx=<a b+>&c=",
		"/people?ssn":                 "/people?ssn_idx=<>",
		"/people?ssnx=1&xssn=2":       "/people?ssnx=1&xssn=2",
	} {
		got, _, err := p.RewriteQuery(in, idx)
		if err != nil || got != want {
			t.Errorf("RewriteQuery(%s) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"/people?ssn_idx=1", "/people?ssn=1&ssn=1", "/people?ssn%5B%5D=1", "/people?a=1;ssn=2",
		"/people?%25%37%33sn=1", "/people?ssn=%2", "/people?x=1#ssn", "/people?ssn%00=1&x", "/people?" + strings.Repeat("a&", 300)} {
		if got, _, err := p.RewriteQuery(in, idx); err == nil {
			t.Errorf("RewriteQuery(%s) = %s, want an error", in, got)
		} else if strings.Contains(err.Error(), "=1") {
			t.Errorf("error quotes the query: %v", err)
		}
	}
}

// FuzzRewriteQuery: whatever the query, the plaintext of an index_query parameter never
// survives in what the application would read (net/url's parse, the loosest reading being
// refused), and every kept component is unchanged.
func FuzzRewriteQuery(f *testing.F) {
	for _, s := range []string{"ssn=1", "SSN=1&x=2", "s%73n=1", "ssn[]=1", "a=1;ssn=1", "ssn_idx=1", "%2573sn=1", "ssn=1&ssn=2", "x"} {
		f.Add(s)
	}
	var c Config
	if err := yaml.Unmarshal([]byte(indexedYAML), &c); err != nil {
		f.Fatal(err)
	}
	set, err := Compile([]Config{c})
	if err != nil {
		f.Fatal(err)
	}
	p := set.Policies()[0]
	f.Fuzz(func(t *testing.T, q string) {
		out, _, err := p.RewriteQuery("/people?"+q, func(*blindindex.Spec, string) (string, error) { return "IDX", nil })
		if err != nil {
			return
		}
		_, query, _ := strings.Cut(out, "?")
		for _, part := range strings.Split(query, "&") {
			name, _, _ := strings.Cut(part, "=")
			if n, ok := formDecode(name); ok && (strings.EqualFold(n, "ssn") || strings.EqualFold(n, "ssn_idx") && part != "ssn_idx=IDX") {
				t.Fatalf("%q became %q: component %q", q, out, part)
			}
			if p.looseQueryMatch(part) != "" && part != "ssn_idx=IDX" {
				t.Fatalf("%q became %q: loose component %q", q, out, part)
			}
		}
	})
}

// TestExplainIndex: `rkms policy test` says which encrypted field gets a blind index and that an
// index member found in a body is removed (it printed an empty action for it).
func TestExplainIndex(t *testing.T) {
	var c Config
	if err := yaml.Unmarshal([]byte(indexedYAML), &c); err != nil {
		t.Fatal(err)
	}
	set, err := Compile([]Config{c})
	if err != nil {
		t.Fatal(err)
	}
	p := set.Policies()[0]
	for _, tc := range []struct {
		response bool
		body     string
		want     []string
	}{
		{false, `{"ssn":"123-45-6789","ssn_idx":"forged"}`, []string{
			"encrypt    $.ssn  label=ssn  index=ssn_idx (64 bits, trim digits)",
			"remove     $.ssn_idx  (blind index member: rkms writes its own)",
		}},
		{true, `{"ssn_idx":"abc"}`, []string{
			"remove     $.ssn_idx  (blind index member: rkms writes its own)",
		}},
	} {
		fs, err := p.Explain([]byte(tc.body), tc.response, "tenant-acme")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, f := range fs {
			got = append(got, f.String())
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("Explain(%s, response=%v):\n got %q\nwant %q", tc.body, tc.response, got, tc.want)
		}
	}
}
