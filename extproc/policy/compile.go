package extproc

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/extproc/jsonfield"
)

// PolicyConfig is one entry of the `policies:` list of the configuration file. See the package
// documentation for the meaning of every field.
type PolicyConfig struct {
	Name     string          `yaml:"name"`
	Match    MatchConfig     `yaml:"match"`
	KeyID    string          `yaml:"key_id"`
	Request  DirectionConfig `yaml:"request"`
	Response DirectionConfig `yaml:"response"`
	Mode     string          `yaml:"mode"` // "randomized" (default) or "deterministic"
	// CaseSensitive makes member names match exactly. By default they match under Unicode
	// case folding, the way Go's encoding/json binds keys, so that {"SSN": ...} cannot slip a
	// value past $.ssn to an application that reads keys case-insensitively.
	CaseSensitive bool `yaml:"case_sensitive"`
}

// MatchConfig selects the requests a policy applies to when Envoy does not name the policy.
// An empty MatchConfig matches nothing: the policy is then used only when a route names it.
type MatchConfig struct {
	PathPrefix string   `yaml:"path_prefix"` // prefix of the path without the query, starts with "/"
	Methods    []string `yaml:"methods"`     // empty: every method
}

// DirectionConfig lists the fields to encrypt and to decrypt in one direction (request or response).
type DirectionConfig struct {
	Encrypt []FieldConfig `yaml:"encrypt"`
	Decrypt []FieldConfig `yaml:"decrypt"`
}

// FieldConfig is one selected field. In YAML it is either a selector string ("$.ssn") or a
// mapping {path: "$.ssn", label: "ssn"}. An empty Label means the selector's default label.
type FieldConfig struct {
	Path  string `yaml:"path"`
	Label string `yaml:"label"`
}

// UnmarshalYAML accepts a plain selector string or a {path, label} mapping.
func (f *FieldConfig) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*f = FieldConfig{}
		return n.Decode(&f.Path)
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i].Value; k != "path" && k != "label" {
				return fmt.Errorf("line %d: unknown field selector key %q (want path, label)", n.Content[i].Line, k)
			}
		}
		type plain FieldConfig
		var p plain
		if err := n.Decode(&p); err != nil {
			return err
		}
		*f = FieldConfig(p)
		return nil
	default:
		return fmt.Errorf("line %d: a field is a selector string or a {path, label} mapping", n.Line)
	}
}

// op is what a field gets: sealed or opened.
type op uint8

const (
	opEncrypt op = iota + 1
	opDecrypt
)

// fieldSet is the compiled field list of one direction.
type fieldSet struct {
	plan     *jsonfield.Plan            // nil: no fields
	ops      map[*jsonfield.Selector]op // keyed by selector: Rewrite hands back the field it matched
	encrypts bool                       // some field is sealed (plaintext must not pass unchecked)
}

func (fs *fieldSet) empty() bool { return fs.plan == nil }

// policy is a compiled PolicyConfig.
type policy struct {
	name     string
	prefix   string
	methods  map[string]bool // nil: every method
	matches  bool            // false: selected only by name
	keyID    *keyIDTemplate
	mode     envelope.Mode
	request  fieldSet
	response fieldSet
}

var policyNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// CheckPolicies reports every problem in policies (each error names the policy and the field),
// or nil. It is what NewServer runs; `rkms config check` can call it without keys.
func CheckPolicies(policies []PolicyConfig) error {
	_, err := compilePolicies(policies)
	return err
}

func compilePolicies(cfgs []PolicyConfig) ([]*policy, error) {
	var errs []error
	seen := map[string]bool{}
	out := make([]*policy, 0, len(cfgs))
	for i := range cfgs {
		p, perrs := compilePolicy(&cfgs[i])
		name := fmt.Sprintf("policies[%d]", i)
		if cfgs[i].Name != "" {
			name = fmt.Sprintf("policy %q", cfgs[i].Name)
		}
		for _, e := range perrs {
			errs = append(errs, fmt.Errorf("%s: %w", name, e))
		}
		if cfgs[i].Name != "" && seen[cfgs[i].Name] {
			errs = append(errs, fmt.Errorf("%s: name: duplicate policy name", name))
		}
		seen[cfgs[i].Name] = true
		if p != nil {
			out = append(out, p)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func compilePolicy(c *PolicyConfig) (*policy, []error) {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	p := &policy{name: c.Name, mode: envelope.Randomized}
	if !policyNameRE.MatchString(c.Name) {
		fail("name: must be 1..128 characters of [A-Za-z0-9._-] starting with a letter or digit")
	}
	if pp := c.Match.PathPrefix; pp != "" {
		if !strings.HasPrefix(pp, "/") || strings.ContainsAny(pp, "?# \t") {
			fail("match.path_prefix: %q must start with \"/\" and hold no query, fragment or space", pp)
		}
		p.prefix, p.matches = pp, true
	}
	if len(c.Match.Methods) > 0 {
		p.methods, p.matches = map[string]bool{}, true
		if p.prefix == "" {
			p.prefix = "/"
		}
		for j, m := range c.Match.Methods {
			if !isToken(m) {
				fail("match.methods[%d]: %q is not an HTTP method", j, m)
			}
			p.methods[strings.ToUpper(m)] = true
		}
	}
	switch c.Mode {
	case "", "randomized":
	case "deterministic":
		p.mode = envelope.Deterministic
	default:
		fail("mode: %q is not \"randomized\" or \"deterministic\"", c.Mode)
	}
	if c.KeyID == "" {
		fail("key_id: required")
	} else if t, err := parseKeyIDTemplate(c.KeyID); err != nil {
		fail("key_id: %w", err)
	} else {
		p.keyID = t
	}
	opts := jsonfield.Options{FoldCase: !c.CaseSensitive}
	var ferrs []error
	p.request, ferrs = compileFields("request", &c.Request, opts)
	errs = append(errs, ferrs...)
	p.response, ferrs = compileFields("response", &c.Response, opts)
	errs = append(errs, ferrs...)
	if p.request.empty() && p.response.empty() && len(errs) == 0 {
		fail("request, response: no fields to encrypt or decrypt")
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return p, nil
}

func compileFields(dir string, d *DirectionConfig, opts jsonfield.Options) (fieldSet, []error) {
	var errs []error
	var fields []jsonfield.Field
	fs := fieldSet{ops: map[*jsonfield.Selector]op{}}
	seen := map[string]string{}
	add := func(list string, o op, cfgs []FieldConfig) {
		for i, fc := range cfgs {
			where := fmt.Sprintf("%s.%s[%d]", dir, list, i)
			sel, err := jsonfield.ParseSelector(fc.Path)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: selector %q: %w", where, fc.Path, err))
				continue
			}
			label := fc.Label
			if label == "" {
				label = sel.DefaultLabel()
			}
			switch {
			case label == "":
				errs = append(errs, fmt.Errorf("%s: selector %q has no default label: give {path, label}", where, fc.Path))
				continue
			case len(label) > envelope.MaxLabelLen:
				errs = append(errs, fmt.Errorf("%s: label longer than %d bytes", where, envelope.MaxLabelLen))
				continue
			}
			if prev, dup := seen[sel.String()]; dup {
				errs = append(errs, fmt.Errorf("%s: selector %q is already listed at %s", where, fc.Path, prev))
				continue
			}
			seen[sel.String()] = where
			fields = append(fields, jsonfield.Field{Selector: sel, Label: label})
			fs.ops[sel] = o
			fs.encrypts = fs.encrypts || o == opEncrypt
		}
	}
	add("encrypt", opEncrypt, d.Encrypt)
	add("decrypt", opDecrypt, d.Decrypt)
	if len(errs) > 0 || len(fields) == 0 {
		return fs, errs
	}
	plan, err := jsonfield.NewPlan(fields, opts)
	if err != nil {
		return fs, []error{fmt.Errorf("%s: %w", dir, err)}
	}
	fs.plan = plan
	return fs, nil
}

// match reports whether the policy's own rules select a request.
func (p *policy) match(method, path string) bool {
	if !p.matches || !strings.HasPrefix(path, p.prefix) {
		return false
	}
	return p.methods == nil || p.methods[method]
}

// isToken reports whether s is a non-empty HTTP token (RFC 9110 tchar).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
