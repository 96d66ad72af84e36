package policy

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestResponseOnly: response_only is accepted only where the response phase of a bodiless GET
// has everything it needs without the request headers, and says why otherwise.
func TestResponseOnly(t *testing.T) {
	reads := func() Config {
		return Config{Name: "reads", Match: Match{PathPrefix: "/reads"}, KeyID: "tenant-{jwt:tenant}", DecryptOnly: true,
			ResponseOnly: true, Response: Direction{Decrypt: []Field{{Path: "$.ssn"}}}}
	}
	for _, tc := range []struct {
		name string
		edit func(c *Config)
		want string // "" accepted
	}{
		{"jwt key id", func(c *Config) {}, ""},
		{"literal key id, jwt context", func(c *Config) { c.KeyID, c.Context = "reads", "{jwt:sub}" }, ""},
		{"GET among methods", func(c *Config) { c.Match.Methods = []string{"post", "get"} }, ""},
		{"HEAD only", func(c *Config) { c.Match.Methods = []string{"HEAD"} }, ""},
		{"both directions", func(c *Config) {
			c.DecryptOnly = false
			c.Request = Direction{Encrypt: []Field{{Path: "$.ssn"}}}
		}, ""},
		{"off", func(c *Config) { c.ResponseOnly, c.KeyID = false, "t-{header:x-org}" }, ""},
		{"header key id", func(c *Config) { c.KeyID = "t-{header:x-org}" }, `response_only: key_id "t-{header:x-org}" reads the request`},
		{"path key id", func(c *Config) { c.KeyID = "t-{path:2}" }, "response_only: key_id"},
		{"peer key id", func(c *Config) { c.KeyID = "{peer:uri_san}" }, "response_only: key_id"},
		{"body context", func(c *Config) { c.Context = "{json:$.id}" }, `response_only: context "{json:$.id}" reads the request`},
		{"path context", func(c *Config) { c.Context = "r-{path:2}" }, "response_only: context"},
		{"no GET or HEAD", func(c *Config) { c.Match.Methods = []string{"POST"} }, "response_only: match.methods has neither GET nor HEAD"},
		{"encrypts the response", func(c *Config) {
			c.Response = Direction{Encrypt: []Field{{Path: "$.ssn"}}}
		}, "response_only: the policy decrypts no response field"},
		{"streams", func(c *Config) { c.Response.Stream = true }, "response_only: not with request.stream or response.stream"},
		{"request only", func(c *Config) {
			c.DecryptOnly = false
			c.Response = Direction{}
			c.Request = Direction{Encrypt: []Field{{Path: "$.ssn"}}}
		}, "response_only: the policy decrypts no response field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := reads()
			tc.edit(&c)
			set, err := Compile([]Config{c})
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := set.Policies()[0].ResponseOnly(); got != c.ResponseOnly {
					t.Errorf("ResponseOnly() = %v, want %v", got, c.ResponseOnly)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("index_query", func(t *testing.T) {
		var c Config
		if err := yaml.Unmarshal([]byte(indexedYAML), &c); err != nil {
			t.Fatal(err)
		}
		c.KeyID, c.ResponseOnly = "tenant-{jwt:tenant}", true
		if _, err := Compile([]Config{c}); err == nil || !strings.Contains(err.Error(), "response_only: not with index_query") {
			t.Errorf("error %v", err)
		}
	})
}
