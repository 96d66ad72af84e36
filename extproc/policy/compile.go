package policy

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/extproc/blindindex"
	"github.com/rkms/rkms/extproc/jsonfield"
)

// Op is what a selected field gets.
type Op uint8

const (
	// Encrypt seals the value.
	Encrypt Op = iota + 1
	// Decrypt opens a ciphertext.
	Decrypt
)

func (o Op) String() string {
	switch o {
	case Encrypt:
		return "encrypt"
	case Decrypt:
		return "decrypt"
	}
	return "none"
}

// Fields is the compiled field list of one direction of a policy.
type Fields struct {
	plan     *jsonfield.Plan // never nil: an empty plan when there are no fields
	ops      map[*jsonfield.Selector]Op
	index    map[*jsonfield.Selector]*blindindex.Spec // blind indexes of request.encrypt fields
	n        int
	encrypts bool // some field is sealed
	decrypts bool // some field is opened
	inbound  bool // bodies in this direction go to the application: tripwires apply
}

// Empty reports whether the direction has no field to encrypt or decrypt.
func (fs *Fields) Empty() bool { return fs.n == 0 }

// Plan returns the compiled selectors of the direction (an empty plan when there are none).
func (fs *Fields) Plan() *jsonfield.Plan { return fs.plan }

// Op returns what field f of the plan gets.
func (fs *Fields) Op(f *jsonfield.Field) Op { return fs.ops[f.Selector] }

// Encrypts reports whether some field of the direction is sealed.
func (fs *Fields) Encrypts() bool { return fs.encrypts }

// Decrypts reports whether some field of the direction is opened.
func (fs *Fields) Decrypts() bool { return fs.decrypts }

// Inbound reports whether bodies in this direction go to the application: request bodies of
// ingress policies (all but those whose requests decrypt), and response bodies that the policy
// encrypts (egress). Tripwires guard inbound bodies; they must be JSON in UTF-8.
func (fs *Fields) Inbound() bool { return fs.inbound }

// Policy is a compiled [Config]. It is immutable and safe for concurrent use.
type Policy struct {
	name     string
	prefix   string          // canonical path prefix; ASCII-folded unless caseSens
	loose    string          // prefix in the loose form (see looseForm)
	methods  map[string]bool // nil: every method
	matches  bool            // false: selected only by name
	caseSens bool
	keyID    *KeyID
	context  *KeyID // nil: no record binding
	mode     envelope.Mode
	request  Fields
	response Fields
	tagged   map[string]string // folded member name -> label, for the tripwire
	// taggedLens has bit min(len(name), 63) set for each name of tagged: an ASCII member name
	// (whose folded form is as long as its trimmed form) of another length is not tagged.
	taggedLens uint64
	allow      *jsonfield.Plan // nil: nothing allowed
	legacy     bool            // legacy plaintext passes at decrypt paths
	create     CreateMode
	noDecomp   bool // compressed request bodies are refused (request.compressed: refuse)
	// Blind indexes: their member names, and the query parameters turned into one.
	indexNames []string
	queries    []QueryIndex
	// Streaming (Direction.Stream): per direction (0 request, 1 response), and the bound on one
	// streamed body.
	stream         [2]bool
	maxStreamBytes int64
	responseOnly   bool     // Config.ResponseOnly, checked by compileResponseOnly
	reveals        *Reveals // response.reveal; nil: decrypted fields are revealed in full
}

// Streams reports whether bodies of the request (response false) or response direction may
// arrive streamed (Direction.Stream).
func (p *Policy) Streams(response bool) bool {
	if response {
		return p.stream[1]
	}
	return p.stream[0]
}

// MaxStreamBytes is the bound on one streamed body of this policy (Config.MaxStreamBytes).
func (p *Policy) MaxStreamBytes() int64 { return p.maxStreamBytes }

// CreateMode says whether sealing may create a policy's key (Config.Create).
type CreateMode uint8

const (
	// CreateOnDemand: sealing creates the key on first use (within the creation rate limit).
	CreateOnDemand CreateMode = iota
	// CreateAdminOnly: sealing never creates; only an operator does, through the key APIs.
	CreateAdminOnly
)

// String returns the mode as written in the configuration.
func (m CreateMode) String() string {
	if m == CreateAdminOnly {
		return "admin_only"
	}
	return "on_demand"
}

// Name returns the policy's name.
func (p *Policy) Name() string { return p.name }

// Mode returns the encryption mode of the fields the policy seals.
func (p *Policy) Mode() envelope.Mode { return p.mode }

// KeyID returns the key id template.
func (p *Policy) KeyID() *KeyID { return p.keyID }

// Context returns the record binding template, or nil when the policy binds none.
func (p *Policy) Context() *KeyID { return p.context }

// Request returns the fields of request bodies.
func (p *Policy) Request() *Fields { return &p.request }

// Response returns the fields of response bodies.
func (p *Policy) Response() *Fields { return &p.response }

// Create returns who may create the policy's keys.
func (p *Policy) Create() CreateMode { return p.create }

// RefusesCompressedRequests reports whether a request body with a content-encoding is refused
// (request.compressed: refuse) instead of decompressed.
func (p *Policy) RefusesCompressedRequests() bool { return p.noDecomp }

// LegacyPlaintextPasses reports whether a value that is not a ciphertext passes unchanged at a
// decrypt path (legacy_plaintext: pass) instead of failing the message.
func (p *Policy) LegacyPlaintextPasses() bool { return p.legacy }

var policyNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// Check reports every problem in cfgs (each error names the policy and the field), or nil.
// It is what [Compile] runs; `rkms config check` calls it without keys.
func Check(cfgs []Config) error {
	_, err := Compile(cfgs)
	return err
}

// Compile checks and compiles policies into a [Set]. Every problem is reported, naming the
// policy and the field.
func Compile(cfgs []Config) (*Set, error) {
	var errs []error
	seen := map[string]bool{}
	out := &Set{byName: map[string]*Policy{}}
	for i := range cfgs {
		p, perrs := compile(&cfgs[i])
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
			out.list = append(out.list, p)
			out.byName[p.name] = p
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func compile(c *Config) (*Policy, []error) {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	p := &Policy{name: c.Name, mode: envelope.Randomized, caseSens: c.CaseSensitive}
	if !policyNameRE.MatchString(c.Name) {
		fail("name: must be 1..128 characters of [A-Za-z0-9._-] starting with a letter or digit")
	}
	if pp := c.Match.PathPrefix; pp != "" {
		canon, ok := canonicalPrefix(pp)
		if !ok {
			fail("match.path_prefix: %q must start with \"/\" and be a canonical path: no query, fragment, space, percent escape, backslash, dot segment or repeated slash", pp)
		}
		p.prefix, p.matches = canon, true
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
	if p.matches {
		p.loose = foldLoose(p.prefix, !p.caseSens)
		if !p.caseSens {
			p.prefix = asciiUpper(p.prefix)
		}
	}
	switch c.Mode {
	case "", "randomized":
	case "deterministic":
		p.mode = envelope.Deterministic
	default:
		fail("mode: %q is not \"randomized\" or \"deterministic\"", c.Mode)
	}
	switch c.LegacyPlaintext {
	case "", "refuse":
	case "pass":
		p.legacy = true
	default:
		fail("legacy_plaintext: %q is not \"refuse\" or \"pass\"", c.LegacyPlaintext)
	}
	switch c.Request.Compressed {
	case "", "decompress":
	case "refuse":
		p.noDecomp = true
	default:
		fail("request.compressed: %q is not \"decompress\" or \"refuse\"", c.Request.Compressed)
	}
	if c.Response.Compressed != "" {
		fail("response.compressed: only requests take it (compressed responses are always decompressed)")
	}
	switch c.Create {
	case "", "on_demand":
	case "admin_only":
		p.create = CreateAdminOnly
	default:
		fail("create: %q is not \"on_demand\" or \"admin_only\"", c.Create)
	}
	if c.KeyID == "" {
		fail("key_id: required")
	} else if t, err := parseKeyIDTemplate(c.KeyID); err != nil {
		fail("key_id: %w", err)
	} else {
		p.keyID = t
	}
	if c.Context != "" {
		if t, err := parseTemplate(c.Context, true); err != nil {
			fail("context: %w", err)
		} else {
			p.context = t
		}
	}
	for i, h := range c.TrustedHeaders {
		if !isToken(strings.TrimPrefix(h, ":")) {
			fail("trusted_headers[%d]: %q is not a header name", i, h)
		}
	}
	opts := jsonfield.Options{FoldCase: !c.CaseSensitive}
	var reqFields, respFields []compiledField
	var ferrs []error
	var decls, respDecls []indexDecl
	p.request, reqFields, decls, ferrs = compileFields("request", &c.Request, opts)
	errs = append(errs, ferrs...)
	p.response, respFields, respDecls, ferrs = compileFields("response", &c.Response, opts)
	errs = append(errs, ferrs...)
	if c.Request.Reveal != nil {
		fail("request.reveal: only responses take reveal rules (request.decrypt fields go to the application)")
	}
	var rerrs []error
	p.reveals, rerrs = compileReveal(c, respFields)
	errs = append(errs, rerrs...)
	for _, d := range respDecls {
		errs = append(errs, fmt.Errorf("%s.index: only request.encrypt fields can declare a blind index", d.where))
	}
	if p.request.Empty() && p.response.Empty() && len(errs) == 0 {
		fail("request, response: no fields to encrypt or decrypt")
	}
	// Request bodies go to the application unless the policy decrypts them (egress: the app
	// sends ciphertexts out); response bodies go to the application when the policy seals them.
	p.request.inbound = !p.request.decrypts
	p.response.inbound = p.response.encrypts
	if !c.DecryptOnly {
		errs = append(errs, checkCovered("request", reqFields, respFields, !c.CaseSensitive)...)
		errs = append(errs, checkCovered("response", respFields, reqFields, !c.CaseSensitive)...)
	}
	if len(errs) == 0 {
		errs = append(errs, p.compileIndexes(c, decls, append(slices.Clone(reqFields), respFields...), opts)...)
	}
	p.tagged = map[string]string{}
	for _, f := range append(slices.Clone(reqFields), respFields...) {
		for _, name := range []string{f.Label, f.Selector.DefaultLabel()} {
			if name != "" {
				p.tagged[string(tripName(nil, []byte(name)))] = f.Label
			}
		}
	}
	for name := range p.tagged {
		p.taggedLens |= lenBit(len(name))
	}
	if len(c.Allow) > 0 {
		var allowed []jsonfield.Field
		for i, a := range c.Allow {
			sel, err := jsonfield.ParseSelector(a)
			if err != nil {
				fail("allow[%d]: selector %q: %w", i, a, err)
				continue
			}
			allowed = append(allowed, jsonfield.Field{Selector: sel, Label: "allow"})
		}
		if len(allowed) == len(c.Allow) {
			plan, err := jsonfield.NewPlan(allowed, opts)
			if err != nil {
				fail("allow: %w", err)
			}
			p.allow = plan
		}
	}
	errs = append(errs, p.compileStream(c)...)
	if c.ResponseOnly && len(errs) == 0 {
		errs = append(errs, p.compileResponseOnly()...)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return p, nil
}

// compileResponseOnly checks and records Config.ResponseOnly: everything the response phase of a
// bodiless GET needs must be computable without the request headers.
func (p *Policy) compileResponseOnly() []error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("response_only: "+format, args...))
	}
	switch {
	case !p.response.decrypts:
		fail("the policy decrypts no response field")
	case p.response.encrypts:
		fail("the policy encrypts response fields (only decrypting responses can skip the request headers)")
	}
	if p.stream[0] || p.stream[1] {
		fail("not with request.stream or response.stream")
	}
	if len(p.queries) > 0 {
		fail("not with index_query (it rewrites the request's query)")
	}
	if !p.keyID.ResponsePhase() {
		fail("key_id %q reads the request: only {jwt:CLAIM} and literals are available without the request headers", p.keyID.String())
	}
	if !p.context.ResponsePhase() {
		fail("context %q reads the request: only {jwt:CLAIM} and literals are available without the request headers", p.context.String())
	}
	if p.methods != nil && !p.methods["GET"] && !p.methods["HEAD"] {
		fail("match.methods has neither GET nor HEAD")
	}
	p.responseOnly = len(errs) == 0
	return errs
}

// ResponseOnly reports whether the policy's bodiless GET and HEAD requests may skip the request
// headers (Config.ResponseOnly, checked).
func (p *Policy) ResponseOnly() bool { return p.responseOnly }

// compileStream checks and records the streaming settings (Direction.Stream,
// Config.MaxStreamBytes). A streamed body is forwarded as it is rewritten, so everything that
// would need the whole body first is refused: a key id or context read from the body ({json:...};
// the keys are looked up before the first chunk goes on) and allow (its selectors are matched
// against the whole document).
func (p *Policy) compileStream(c *Config) []error {
	var errs []error
	p.stream = [2]bool{c.Request.Stream, c.Response.Stream}
	p.maxStreamBytes = c.MaxStreamBytes
	switch {
	case c.MaxStreamBytes == 0:
		p.maxStreamBytes = DefaultMaxStreamBytes
	case c.MaxStreamBytes < 0 || c.MaxStreamBytes > MaxMaxStreamBytes:
		errs = append(errs, fmt.Errorf("max_stream_bytes: %d is not between 1 and %d", c.MaxStreamBytes, MaxMaxStreamBytes))
	}
	if !p.stream[0] && !p.stream[1] {
		return errs
	}
	for _, t := range []struct {
		name string
		tmpl *KeyID
	}{{"key_id", p.keyID}, {"context", p.context}} {
		if t.tmpl != nil && t.tmpl.NeedsBody() {
			errs = append(errs, fmt.Errorf("%s: a streaming policy (request.stream or response.stream) cannot read it from the body ({json:...}): the keys are looked up before the first chunk is forwarded", t.name))
		}
	}
	if p.stream[0] && len(c.Allow) > 0 {
		errs = append(errs, fmt.Errorf("allow: not supported with request.stream (it is matched against the whole body)"))
	}
	return errs
}

type compiledField struct {
	jsonfield.Field
	op    Op
	where string
}

func compileFields(dir string, d *Direction, opts jsonfield.Options) (Fields, []compiledField, []indexDecl, []error) {
	var errs []error
	var fields []jsonfield.Field
	var out []compiledField
	var decls []indexDecl
	fs := Fields{ops: map[*jsonfield.Selector]Op{}, index: map[*jsonfield.Selector]*blindindex.Spec{}}
	seen := map[string]string{}
	add := func(list string, o Op, cfgs []Field) {
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
			if fc.Index != nil {
				if o != Encrypt || dir != "request" {
					errs = append(errs, fmt.Errorf("%s.index: only request.encrypt fields can declare a blind index", where))
					continue
				}
				spec, ierrs := compileIndex(where, sel, fc.Index)
				if len(ierrs) > 0 {
					errs = append(errs, ierrs...)
					continue
				}
				fs.index[sel] = spec
				decls = append(decls, indexDecl{where: where, spec: spec})
			}
			f := jsonfield.Field{Selector: sel, Label: label}
			fields = append(fields, f)
			out = append(out, compiledField{Field: f, op: o, where: where})
			fs.ops[sel] = o
			fs.encrypts = fs.encrypts || o == Encrypt
			fs.decrypts = fs.decrypts || o == Decrypt
		}
	}
	add("encrypt", Encrypt, d.Encrypt)
	add("decrypt", Decrypt, d.Decrypt)
	fs.n = len(fields)
	plan, err := jsonfield.NewPlan(fields, opts)
	if err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", dir, err))
	}
	fs.plan = plan
	return fs, out, decls, errs
}

// Warnings returns what `rkms config check` should warn about in valid policies: key id or
// context templates that read a request header the policy does not declare trusted (a client
// that can set it chooses its key).
func Warnings(cfgs []Config) []string {
	var out []string
	for i := range cfgs {
		c := &cfgs[i]
		out = append(out, revealWarnings(c)...)
		trusted := map[string]bool{}
		for _, h := range c.TrustedHeaders {
			trusted[strings.ToLower(h)] = true
		}
		for _, src := range []struct{ field, tmpl string }{{"key_id", c.KeyID}, {"context", c.Context}} {
			if src.tmpl == "" {
				continue
			}
			t, err := parseTemplate(src.tmpl, src.field == "context")
			if err != nil {
				continue
			}
			for _, h := range t.Headers() {
				if !trusted[h] && !strings.HasPrefix(h, ":") {
					out = append(out, fmt.Sprintf("policy %q: %s reads header %s, which is not in trusted_headers: "+
						"unless something in front of ext_proc sets or verifies it, a client chooses its key (prefer {jwt:CLAIM} or {peer:uri_san})",
						c.Name, src.field, h))
				}
			}
		}
	}
	return out
}

// checkCovered reports each field of one direction that decrypts a value the other direction
// never encrypts: an encrypted field of the other direction with the same label must select
// every value the decrypted one can select. Otherwise a client could store a stolen ciphertext
// where the request leaves values alone and have the response decrypt it (an oracle).
func checkCovered(dir string, fields, other []compiledField, fold bool) []error {
	var errs []error
	for _, d := range fields {
		if d.op != Decrypt {
			continue
		}
		covered := false
		for _, e := range other {
			if e.op == Encrypt && e.Label == d.Label && e.Selector.Covers(d.Selector, fold) {
				covered = true
				break
			}
		}
		if !covered {
			otherDir := "response"
			if dir == "response" {
				otherDir = "request"
			}
			errs = append(errs, fmt.Errorf("%s: decrypts %s (label %q), which no %s.encrypt selector with that label covers: "+
				"encrypt it there too (for example with a $.. selector), or set decrypt_only: true if another route seals it", d.where, d.Selector, d.Label, otherDir))
		}
	}
	return errs
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
