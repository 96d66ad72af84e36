package policy

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/rkms/rkms/extproc/blindindex"
	"github.com/rkms/rkms/extproc/jsonfield"
)

// indexNameRE is the rule for index member names: a jsonfield selector name (so that $..NAME
// removes it) of at most 64 bytes; JSON needs no escape for it.
var indexNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// queryParamRE is the rule for index_query parameter names.
var queryParamRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// Index returns the blind index field f declares (nil for none): f is a field of the plan of
// this direction.
func (fs *Fields) Index(f *jsonfield.Field) *blindindex.Spec { return fs.index[f.Selector] }

// Indexes reports whether some field of the direction declares a blind index.
func (fs *Fields) Indexes() bool { return len(fs.index) > 0 }

// QueryIndex is a compiled index_query entry: the query parameter and the index it becomes.
type QueryIndex struct {
	Param string
	Spec  *blindindex.Spec
}

// IndexQueries returns the query parameters the policy turns into blind indexes (do not modify).
func (p *Policy) IndexQueries() []QueryIndex { return p.queries }

// IndexNames returns the names of the policy's blind indexes (do not modify).
func (p *Policy) IndexNames() []string { return p.indexNames }

// compileIndex checks an index declaration of field where (a request.encrypt field whose
// selector is sel) and returns its spec.
func compileIndex(where string, sel *jsonfield.Selector, ix *Index) (*blindindex.Spec, []error) {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(where+".index"+format, args...)) }
	if !indexNameRE.MatchString(ix.Name) {
		fail(".name: %q must be 1..64 characters of [A-Za-z0-9_-]", ix.Name)
	}
	if !sel.EndsInMember() {
		fail(": selector %s must end in a member name (.name or ..name): the index is a sibling member in the same object", sel)
	}
	bits := ix.Bits
	if bits == 0 {
		bits = blindindex.DefaultBits
	}
	if err := blindindex.CheckBits(bits); err != nil {
		fail(".%w", err)
	}
	norm, err := blindindex.ParseNorm(ix.Normalize)
	if err != nil {
		fail(".%w", err)
	}
	return &blindindex.Spec{Name: ix.Name, Bits: bits, Norm: norm}, errs
}

// compileIndexes finishes the indexes of a policy once both directions are compiled: every
// index name is unique and unlike any field's label or member name (case folded unless the
// policy is case-sensitive); the request and response plans get Remove fields for $..NAME (a
// client's member of that name never reaches the application, and the application's never
// reaches the client); index_query entries name a declared index.
func (p *Policy) compileIndexes(c *Config, specs []indexDecl, fields []compiledField, opts jsonfield.Options) []error {
	var errs []error
	fold := func(s string) string {
		if c.CaseSensitive {
			return s
		}
		return strings.ToLower(string(jsonfield.Fold(nil, []byte(s))))
	}
	taken := map[string]string{}
	for _, f := range fields {
		for _, n := range []string{f.Label, f.Selector.DefaultLabel()} {
			if n != "" {
				taken[fold(n)] = f.where
			}
		}
	}
	byName := map[string]*blindindex.Spec{}
	for _, d := range specs {
		k := fold(d.spec.Name)
		if prev, ok := taken[k]; ok {
			errs = append(errs, fmt.Errorf("%s.index.name: %q is already the name or label of a field (%s): an index needs a member name of its own", d.where, d.spec.Name, prev))
			continue
		}
		taken[k] = d.where + ".index"
		byName[d.spec.Name] = d.spec
		p.indexNames = append(p.indexNames, d.spec.Name)
	}
	for i, q := range c.Request.IndexQuery {
		where := fmt.Sprintf("request.index_query[%d]", i)
		if !queryParamRE.MatchString(q.Param) {
			errs = append(errs, fmt.Errorf("%s.param: %q must be 1..64 characters of [A-Za-z0-9_.-]", where, q.Param))
		}
		spec, ok := byName[q.Index]
		if !ok {
			errs = append(errs, fmt.Errorf("%s.index: %q is not an index declared by a request.encrypt field of this policy", where, q.Index))
			continue
		}
		if fold(q.Param) == fold(q.Index) {
			errs = append(errs, fmt.Errorf("%s.param: the parameter must differ from the index name", where))
		}
		if p.keyID != nil && p.keyID.NeedsBody() {
			errs = append(errs, fmt.Errorf("%s: the key id reads the request body ({json:...}), which a lookup does not have: index_query needs a key id from headers, the path or identities", where))
		}
		p.queries = append(p.queries, QueryIndex{Param: q.Param, Spec: spec})
	}
	if len(c.Response.IndexQuery) > 0 {
		errs = append(errs, fmt.Errorf("response.index_query: index_query applies to requests only"))
	}
	if len(errs) > 0 || len(p.indexNames) == 0 {
		return errs
	}
	for _, fs := range []*Fields{&p.request, &p.response} {
		all := append([]jsonfield.Field(nil), fs.plan.Fields()...)
		for _, n := range p.indexNames {
			all = append(all, jsonfield.Field{Selector: jsonfield.MustParseSelector("$.." + n), Label: n, Remove: true})
		}
		plan, err := jsonfield.NewPlan(all, opts)
		if err != nil {
			errs = append(errs, fmt.Errorf("index: %w", err))
			continue
		}
		fs.plan = plan
		fs.n = len(all)
	}
	return errs
}

// indexDecl is an index declaration found while compiling the request fields.
type indexDecl struct {
	where string
	spec  *blindindex.Spec
}
