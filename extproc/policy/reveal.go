package policy

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/rkms/rkms/extproc/jsonfield"
	"github.com/rkms/rkms/extproc/reveal"
)

// Reveal is response.reveal: what each caller sees of each decrypted response field, on its
// verified identity. With it, a field no rule reveals to the caller gets Default (deny by
// default); without it, every decrypted field is revealed in full, as before.
type Reveal struct {
	// Default is the action of a field no rule names for the caller: "redact" when empty.
	Default string `yaml:"default"`
	// RedactAs is what redact gives instead of JSON null: this string (for example "[redacted]").
	RedactAs *string `yaml:"redact_as"`
	// Audit writes one audit record per response with the action each field selector got
	// (selectors and counts, never values).
	Audit bool         `yaml:"audit"`
	Rules []RevealRule `yaml:"rules"`
}

// RevealRule reveals fields to the callers When matches: Fields maps a response.decrypt
// selector (as written there) to an action (package reveal: full, mask:..., redact, token,
// ciphertext). Rules are evaluated in order; for each field, the first rule whose When matches
// and that names the field decides.
type RevealRule struct {
	// Name labels the rule in metrics and audit records; "rules[N]" when empty.
	Name   string            `yaml:"name"`
	When   RevealWhen        `yaml:"when"`
	Fields map[string]string `yaml:"fields"`
}

// RevealWhen is a rule's condition on the caller's verified identity: every entry must match
// (and at least one is required). See [Reveals.Resolve] for how a claim matches.
type RevealWhen struct {
	// JWT maps claim names of the token Envoy's jwt_authn verified to the value they must hold.
	JWT map[string]string `yaml:"jwt"`
	// Peer maps uri_san and dns_san to the value the client certificate Envoy verified must have.
	Peer map[string]string `yaml:"peer"`
	// Header maps request header names to their required value; each header must be listed in
	// the policy's trusted_headers (set or verified by something the client cannot bypass).
	Header map[string]string `yaml:"header"`
}

// Bounds of a reveal section.
const (
	MaxRevealRules      = 64
	MaxRevealConditions = 16
	maxRevealValueLen   = 1024
)

// Decision is the action a field gets for one caller and the rule that chose it ("default"
// when none did).
type Decision struct {
	Action reveal.Action
	Rule   string
}

// DefaultRule is the rule name of a [Decision] no rule made.
const DefaultRule = "default"

// Reveals is a compiled [Reveal]. It is immutable and safe for concurrent use.
type Reveals struct {
	def      reveal.Action
	redacted []byte // what redact gives: null or a JSON string
	audit    bool
	rules    []revealRule
	sels     []*jsonfield.Selector // field number -> response.decrypt selector
	names    []string              // field number -> selector text
}

type revealRule struct {
	name    string
	conds   []revealCond
	actions map[int]reveal.Action // field number -> action
}

type revealCond struct{ source, name, value string } // source: jwt, peer, header

// Reveals returns the policy's reveal rules, or nil when it has none (every decrypted field is
// revealed in full).
func (p *Policy) Reveals() *Reveals { return p.reveals }

// Field returns the field number of a response.decrypt selector, and false for others.
func (r *Reveals) Field(f *jsonfield.Field) (int, bool) {
	if r == nil {
		return 0, false
	}
	// A scan, not a map: a policy decrypts a few fields, and this runs for every value.
	for i, s := range r.sels {
		if s == f.Selector {
			return i, true
		}
	}
	return 0, false
}

// Fields returns the selectors of the decrypted fields, by field number.
func (r *Reveals) Fields() []string { return r.names }

// Redacted returns the JSON text redact gives: null or the redact_as string.
func (r *Reveals) Redacted() []byte { return r.redacted }

// Audit reports whether each response's decisions are audited (reveal.audit).
func (r *Reveals) Audit() bool { return r.audit }

// Resolve appends to dst (reused when large enough) the decision of every field, by field
// number, for the caller src describes: the first rule that names the field and whose
// conditions all match src, else the default. A claim condition matches a claim equal to its
// value; a claim that is a JSON array matches when an element equals it; the claims "scope"
// and "scp" given as one space-separated string match when one of their words equals it. A
// string equals the value exactly, an integer number in decimal, a boolean as true or false
// (when src.JWT is a [ClaimMatcher]; otherwise by [Claims.Claim]). A peer condition matches
// the verified client certificate's first URI or DNS SAN exactly. A header condition matches
// a header present exactly once with that exact value.
func (r *Reveals) Resolve(dst []Decision, src *Source) []Decision {
	dst = slices.Grow(dst[:0], len(r.names))[:len(r.names)]
	done := 0
	for i := range dst {
		dst[i] = Decision{}
	}
	for ri := range r.rules {
		rule := &r.rules[ri]
		if !rule.matches(src) {
			continue
		}
		for fi, a := range rule.actions {
			if dst[fi].Action.Kind == 0 {
				dst[fi] = Decision{Action: a, Rule: rule.name}
				done++
			}
		}
		if done == len(dst) {
			break
		}
	}
	for i := range dst {
		if dst[i].Action.Kind == 0 {
			dst[i] = Decision{Action: r.def, Rule: DefaultRule}
		}
	}
	return dst
}

// ClaimMatcher is implemented by [Claims] that can hold lists (a verified JWT payload): it
// reports whether claim name holds value as [Reveals.Resolve] says.
type ClaimMatcher interface {
	HasClaim(name, value string) bool
}

func (rule *revealRule) matches(src *Source) bool {
	for _, c := range rule.conds {
		if !c.matches(src) {
			return false
		}
	}
	return true
}

func (c revealCond) matches(src *Source) bool {
	switch c.source {
	case "jwt":
		if src.JWT == nil {
			return false
		}
		if m, ok := src.JWT.(ClaimMatcher); ok {
			return m.HasClaim(c.name, c.value)
		}
		v, ok := src.JWT.Claim(c.name)
		return ok && (v == c.value || IsListClaim(c.name) && slices.Contains(strings.Fields(v), c.value))
	case "peer":
		if c.name == "uri_san" {
			return src.PeerURISAN != "" && src.PeerURISAN == c.value
		}
		return src.PeerDNSSAN != "" && src.PeerDNSSAN == c.value
	case "header":
		if src.Headers == nil {
			return false
		}
		n, ok := 0, false
		for i := 0; i < src.Headers.Len(); i++ {
			if name, v := src.Headers.At(i); strings.EqualFold(name, c.name) {
				n++
				ok = v == c.value
			}
		}
		return n == 1 && ok
	}
	return false
}

// ClaimHolds reports whether claim name, whose value v is decoded JSON (string, float64,
// bool, []any, map[string]any, nil), holds value as [Reveals.Resolve] says: a string equal to
// it (for [IsListClaim] names, one of its space-separated words), an integer number equal to
// it in decimal, a boolean as true or false, an array when one of its elements does (one
// level: an array in an array does not count). It is the one rule every [ClaimMatcher] follows.
func ClaimHolds(name string, v any, value string) bool {
	if l, ok := v.([]any); ok {
		for _, e := range l {
			if scalarHolds(e, value) {
				return true
			}
		}
		return false
	}
	if s, ok := v.(string); ok && IsListClaim(name) {
		return slices.Contains(strings.Fields(s), value)
	}
	return scalarHolds(v, value)
}

func scalarHolds(v any, value string) bool {
	switch x := v.(type) {
	case string:
		return x == value
	case float64:
		return x == math.Trunc(x) && math.Abs(x) <= 1<<53 && strconv.FormatInt(int64(x), 10) == value
	case bool:
		return strconv.FormatBool(x) == value
	}
	return false
}

// IsListClaim reports whether a string claim is a space-separated list (OAuth 2.0 "scope", and
// "scp"), which a reveal condition matches by word.
func IsListClaim(name string) bool { return name == "scope" || name == "scp" }

// compileReveal checks and compiles response.reveal against the policy's compiled response
// fields (respFields) and configuration c.
func compileReveal(c *Config, respFields []compiledField) (*Reveals, []error) {
	rc := c.Response.Reveal
	if rc == nil {
		return nil, nil
	}
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("response.reveal"+format, args...))
	}
	r := &Reveals{redacted: []byte("null"), audit: rc.Audit}
	bySel := map[string]int{}
	for _, f := range respFields {
		if f.op == Decrypt {
			bySel[f.Selector.String()] = len(r.names)
			r.sels = append(r.sels, f.Selector)
			r.names = append(r.names, f.Selector.String())
		}
	}
	if len(r.names) == 0 {
		fail(": the policy decrypts no response field")
	}
	def := rc.Default
	if def == "" {
		def = "redact"
	}
	var err error
	if r.def, err = reveal.Parse(def); err != nil {
		fail(".default: %w", err)
	}
	if rc.RedactAs != nil {
		if len(*rc.RedactAs) > maxRevealValueLen || !utf8.ValidString(*rc.RedactAs) {
			fail(".redact_as: at most %d bytes of UTF-8", maxRevealValueLen)
		}
		r.redacted, _ = json.Marshal(*rc.RedactAs)
	}
	if len(rc.Rules) > MaxRevealRules {
		fail(".rules: at most %d rules (got %d)", MaxRevealRules, len(rc.Rules))
		return nil, errs
	}
	trusted := map[string]bool{}
	for _, h := range c.TrustedHeaders {
		trusted[strings.ToLower(h)] = true
	}
	names := map[string]bool{}
	for i, rule := range rc.Rules {
		where := fmt.Sprintf(".rules[%d]", i)
		cr := revealRule{name: rule.Name, actions: map[int]reveal.Action{}}
		switch {
		case rule.Name == "":
			cr.name = fmt.Sprintf("rules[%d]", i)
		case rule.Name == DefaultRule || !policyNameRE.MatchString(rule.Name):
			fail("%s.name: %q must be 1..128 characters of [A-Za-z0-9._-] starting with a letter or digit, and not %q", where, rule.Name, DefaultRule)
		case names[rule.Name]:
			fail("%s.name: duplicate rule name %q", where, rule.Name)
		}
		names[cr.name] = true
		var cerrs []error
		cr.conds, cerrs = compileWhen(where, rule.When, trusted, c.ResponseOnly)
		for _, e := range cerrs {
			fail("%w", e)
		}
		if len(rule.Fields) == 0 {
			fail("%s.fields: name at least one field", where)
		}
		for _, sel := range slices.Sorted(maps.Keys(rule.Fields)) {
			a, err := reveal.Parse(rule.Fields[sel])
			if err != nil {
				fail("%s.fields[%q]: %w", where, sel, err)
				continue
			}
			s, err := jsonfield.ParseSelector(sel)
			if err != nil {
				fail("%s.fields: selector %q: %w", where, sel, err)
				continue
			}
			if fi, ok := bySel[s.String()]; ok {
				cr.actions[fi] = a
			}
		}
		r.rules = append(r.rules, cr)
	}
	return r, errs
}

// compileWhen checks a rule's condition.
func compileWhen(where string, w RevealWhen, trusted map[string]bool, responseOnly bool) ([]revealCond, []error) {
	var conds []revealCond
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(where+".when"+format, args...)) }
	for _, src := range []struct {
		name string
		m    map[string]string
	}{{"jwt", w.JWT}, {"peer", w.Peer}, {"header", w.Header}} {
		for _, k := range slices.Sorted(maps.Keys(src.m)) {
			v := src.m[k]
			switch {
			case k == "" || len(k) > maxRevealValueLen || len(v) > maxRevealValueLen:
				fail(".%s: names and values are 1..%d bytes", src.name, maxRevealValueLen)
				continue
			case v == "":
				fail(".%s.%s: the value must not be empty", src.name, k)
				continue
			case src.name == "peer" && k != "uri_san" && k != "dns_san":
				fail(".peer.%s: want uri_san or dns_san", k)
				continue
			case src.name == "header" && !trusted[strings.ToLower(k)]:
				fail(".header.%s: the header is not in trusted_headers: a client could set it and pick what it sees", k)
				continue
			case src.name == "header" && responseOnly:
				fail(".header.%s: a response_only policy never sees the request headers", k)
				continue
			}
			if src.name == "header" {
				k = strings.ToLower(k)
			}
			conds = append(conds, revealCond{source: src.name, name: k, value: v})
		}
	}
	switch {
	case len(conds) == 0 && len(errs) == 0:
		fail(": name at least one condition (jwt, peer or header); for every caller, use default")
	case len(conds) > MaxRevealConditions:
		fail(": at most %d conditions", MaxRevealConditions)
	}
	return conds, errs
}

// revealWarnings returns what `rkms config check` warns about in a valid reveal section.
func revealWarnings(c *Config) []string {
	rc := c.Response.Reveal
	if rc == nil {
		return nil
	}
	p, errs := compile(c)
	if len(errs) > 0 || p.reveals == nil {
		return nil
	}
	r := p.reveals
	var out []string
	warn := func(format string, args ...any) {
		out = append(out, fmt.Sprintf("policy %q: response.reveal", c.Name)+fmt.Sprintf(format, args...))
	}
	if r.def.Kind == reveal.Full {
		warn(".default: full reveals every decrypted field to every caller no rule matches (a reveal section usually denies by default)")
	}
	revealed := make([]bool, len(r.names))
	for i, rule := range rc.Rules {
		cr := &r.rules[i]
		for _, sel := range slices.Sorted(maps.Keys(rule.Fields)) {
			s, err := jsonfield.ParseSelector(sel)
			if err != nil {
				continue
			}
			if !slices.Contains(r.names, s.String()) {
				warn(".rules[%d] (%s): field %s is not a response.decrypt field of the policy: the rule never applies to it", i, cr.name, sel)
			}
		}
		for _, cd := range cr.conds {
			if cd.source == "peer" {
				warn(".rules[%d] (%s): when.peer matches only when Envoy's listener verifies client certificates "+
					"(envoy/README.md, downstream mutual TLS); `rkms envoy-config` does not render that: without it the rule never matches", i, cr.name)
				break
			}
		}
		for fi := range cr.actions {
			if shadow := r.shadowing(i, fi); shadow >= 0 {
				warn(".rules[%d] (%s): never applies to %s: rules[%d] (%s) comes first, names it and matches every caller this rule matches",
					i, cr.name, r.names[fi], shadow, r.rules[shadow].name)
			}
			revealed[fi] = true
		}
	}
	for fi, ok := range revealed {
		if !ok {
			warn(": no rule names %s: every caller gets the default (%s)", r.names[fi], r.def)
		}
	}
	return out
}

// shadowing returns the first rule before rule ri that names field fi and whose conditions
// are a subset of ri's (it matches whenever ri does), or -1.
func (r *Reveals) shadowing(ri, fi int) int {
	for j := 0; j < ri; j++ {
		if _, ok := r.rules[j].actions[fi]; !ok {
			continue
		}
		subset := true
		for _, c := range r.rules[j].conds {
			if !slices.Contains(r.rules[ri].conds, c) {
				subset = false
				break
			}
		}
		if subset {
			return j
		}
	}
	return -1
}
