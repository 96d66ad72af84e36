package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/extproc/jsonfield"
)

// KeyID is a template that computes a value from a request: a key id (key_id) or a record
// binding context (context). It is literal text plus placeholders: {header:NAME},
// {json:SELECTOR} (request body), {path:N} (N-th segment, 0-based, of the canonical path),
// {jwt:CLAIM} (a claim of the JWT Envoy verified) and {peer:uri_san} / {peer:dns_san} (the
// client certificate Envoy verified).
type KeyID struct {
	parts     []idPart
	needsBody bool
	what      string // "key id" or "context", for messages
	context   bool   // a context: any text up to envelope.MaxContextLen, not the key id rule
}

type partKind uint8

const (
	partLiteral partKind = iota
	partHeader
	partJSON
	partPath
	partJWT
	partPeer
)

// Peer identities that {peer:...} reads.
const (
	PeerURISAN = "uri_san"
	PeerDNSSAN = "dns_san"
)

type idPart struct {
	kind partKind
	text string              // literal text, lowercase header name, claim name or peer field
	sel  *jsonfield.Selector // partJSON
	plan *jsonfield.Plan     // partJSON
	seg  int                 // partPath
}

// maxPathSegment bounds {path:N}; real routes are far shorter.
const maxPathSegment = 63

func parseKeyIDTemplate(s string) (*KeyID, error) { return parseTemplate(s, false) }

// parseTemplate parses a key id template, or a context template when context is true.
func parseTemplate(s string, context bool) (*KeyID, error) {
	t := &KeyID{what: "key id", context: context}
	if context {
		t.what = "context"
	}
	if s == "" {
		return nil, fmt.Errorf("empty %s template", t.what)
	}
	if len(s) > 4096 {
		return nil, fmt.Errorf("%s template longer than 4096 bytes", t.what)
	}
	for rest := s; rest != ""; {
		open := strings.IndexAny(rest, "{}")
		if open < 0 {
			open = len(rest)
		}
		if open > 0 {
			lit := rest[:open]
			if i := firstNonKeyIDByte(lit); i >= 0 && !context {
				return nil, fmt.Errorf("literal text %q holds %q, which is not allowed in key ids", lit, lit[i])
			}
			t.parts = append(t.parts, idPart{kind: partLiteral, text: lit})
			rest = rest[open:]
			continue
		}
		if rest[0] == '}' {
			return nil, fmt.Errorf("unmatched \"}\"")
		}
		end := strings.IndexByte(rest, '}')
		if end < 0 {
			return nil, fmt.Errorf("unterminated placeholder %q", rest)
		}
		p, err := parsePlaceholder(rest[1:end])
		if err != nil {
			return nil, err
		}
		if p.kind == partJSON {
			t.needsBody = true
		}
		t.parts = append(t.parts, p)
		rest = rest[end+1:]
	}
	if t.constant() {
		if context {
			return nil, fmt.Errorf("a context template needs a placeholder: a constant binds nothing")
		}
		if err := validateKeyID(t.parts[0].text); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func parsePlaceholder(ph string) (idPart, error) {
	kindName, arg, ok := strings.Cut(ph, ":")
	if !ok || arg == "" {
		return idPart{}, fmt.Errorf("placeholder {%s}: want {header:NAME}, {json:SELECTOR}, {path:N}, {jwt:CLAIM} or {peer:uri_san|dns_san}", ph)
	}
	switch kindName {
	case "header":
		name := strings.ToLower(arg)
		if !isToken(strings.TrimPrefix(name, ":")) {
			return idPart{}, fmt.Errorf("placeholder {%s}: %q is not a header name", ph, arg)
		}
		return idPart{kind: partHeader, text: name}, nil
	case "json":
		sel, err := jsonfield.ParseSelector(arg)
		if err != nil {
			return idPart{}, fmt.Errorf("placeholder {%s}: %w", ph, err)
		}
		if strings.ContainsAny(sel.String(), "{}") {
			return idPart{}, fmt.Errorf("placeholder {%s}: selector must not contain braces", ph)
		}
		// Case-folded, so that a case variant of the member ({"tenant":..,"TENANT":..}, which Go's
		// encoding/json may bind instead) is selected too and makes the value ambiguous.
		plan, err := jsonfield.NewPlan([]jsonfield.Field{{Selector: sel, Label: "key-id"}}, jsonfield.Options{FoldCase: true})
		if err != nil {
			return idPart{}, fmt.Errorf("placeholder {%s}: %w", ph, err)
		}
		return idPart{kind: partJSON, sel: sel, plan: plan}, nil
	case "path":
		n, err := strconv.Atoi(arg)
		if err != nil || n < 0 || n > maxPathSegment || strconv.Itoa(n) != arg {
			return idPart{}, fmt.Errorf("placeholder {%s}: segment must be an integer 0..%d", ph, maxPathSegment)
		}
		return idPart{kind: partPath, seg: n}, nil
	case "jwt":
		if strings.ContainsAny(arg, "{} \t") || len(arg) > 256 {
			return idPart{}, fmt.Errorf("placeholder {%s}: %q is not a claim name", ph, arg)
		}
		return idPart{kind: partJWT, text: arg}, nil
	case "peer":
		if arg != PeerURISAN && arg != PeerDNSSAN {
			return idPart{}, fmt.Errorf("placeholder {%s}: want {peer:%s} or {peer:%s}", ph, PeerURISAN, PeerDNSSAN)
		}
		return idPart{kind: partPeer, text: arg}, nil
	default:
		return idPart{}, fmt.Errorf("placeholder {%s}: unknown source %q (want header, json, path, jwt or peer)", ph, kindName)
	}
}

// Headers lists the header names the template reads ({header:NAME}), for trust checks.
func (t *KeyID) Headers() []string {
	var out []string
	for _, p := range t.parts {
		if p.kind == partHeader {
			out = append(out, p.text)
		}
	}
	return out
}

func (t *KeyID) constant() bool {
	return len(t.parts) == 1 && t.parts[0].kind == partLiteral
}

// String renders the template in canonical form; parsing it gives the same template.
func (t *KeyID) String() string {
	var b strings.Builder
	for _, p := range t.parts {
		switch p.kind {
		case partLiteral:
			b.WriteString(p.text)
		case partHeader:
			b.WriteString("{header:" + p.text + "}")
		case partJSON:
			b.WriteString("{json:" + p.sel.String() + "}")
		case partPath:
			b.WriteString("{path:" + strconv.Itoa(p.seg) + "}")
		case partJWT:
			b.WriteString("{jwt:" + p.text + "}")
		case partPeer:
			b.WriteString("{peer:" + p.text + "}")
		}
	}
	return b.String()
}

// Headers gives a request's headers in order, pseudo-headers included; names are lowercase.
// It is an indexed interface, not an iterator, so that reading it allocates nothing.
type Headers interface {
	Len() int
	At(i int) (name, value string)
}

// Claims gives the claims of a JWT that Envoy verified (jwt_authn payload_in_metadata).
type Claims interface {
	// Claim returns claim name as text: a string as is, a number only when it is an integer
	// (in decimal, without exponent). ok is false when the claim is absent or of another type.
	Claim(name string) (value string, ok bool)
}

// Source is what a key id or context is computed from.
type Source struct {
	Headers Headers
	Path    string // the canonical path ([Canonical])
	Body    []byte // request body; nil when the request has none
	JWT     Claims // the verified JWT payload; nil when Envoy forwarded none
	// PeerURISAN and PeerDNSSAN are the first URI and DNS SANs of the client certificate Envoy
	// verified (ext_proc request_attributes); empty when there is none.
	PeerURISAN, PeerDNSSAN string
}

// NeedsBody reports whether the template reads the request body ({json:...}).
func (t *KeyID) NeedsBody() bool { return t.needsBody }

// Eval computes the value. A missing source or a key id that breaks the key id rule is an
// [*Error] (the client's fault); a body that is not JSON wraps jsonfield.ErrInvalidJSON.
// A key id it returns has passed [envelope.ValidateKeyID]: this is where an ext_proc request's
// key id is validated, once (FuzzKeyIDTemplate checks the promise).
func (t *KeyID) Eval(src *Source) (string, error) {
	var b strings.Builder
	for _, p := range t.parts {
		switch p.kind {
		case partLiteral:
			b.WriteString(p.text)
		case partHeader:
			v, err := single(src.Headers, p.text)
			if err != nil {
				return "", badInput("%s source: header %s %s", t.what, p.text, err)
			}
			b.WriteString(v)
		case partPath:
			seg, ok := pathSegment(src.Path, p.seg)
			if !ok {
				return "", badInput("%s source: path segment %d missing", t.what, p.seg)
			}
			b.WriteString(seg)
		case partJSON:
			v, err := jsonScalar(src.Body, &p, t.what)
			if err != nil {
				return "", err
			}
			b.WriteString(v)
		case partJWT:
			var v string
			ok := src.JWT != nil
			if ok {
				v, ok = src.JWT.Claim(p.text)
			}
			if !ok || v == "" {
				return "", badInput("%s source: verified JWT claim %s missing", t.what, p.text)
			}
			b.WriteString(v)
		case partPeer:
			v := src.PeerURISAN
			if p.text == PeerDNSSAN {
				v = src.PeerDNSSAN
			}
			if v == "" {
				return "", badInput("%s source: verified client certificate %s missing", t.what, p.text)
			}
			b.WriteString(v)
		}
	}
	v := b.String()
	if t.context {
		if v == "" {
			// An empty context binds nothing: the value would open in any record without one.
			return "", badInput("computed context is empty")
		}
		if len(v) > envelope.MaxContextLen {
			return "", badInput("computed context is longer than %d bytes", envelope.MaxContextLen)
		}
		return v, nil
	}
	if err := validateKeyID(v); err != nil {
		return "", &Error{Reason: BadInput, Msg: "computed key id is invalid", Err: err}
	}
	return v, nil
}

// validateKeyID is the key id rule for the ids policies compute: [envelope.ValidateKeyID], and
// not reserved for rkms's own keys ([envelope.IsReservedKeyID]: the blind index root). Both
// wrap [ErrInvalidKeyID].
func validateKeyID(id string) error {
	if err := envelope.ValidateKeyID(id); err != nil {
		return err
	}
	if envelope.IsReservedKeyID(id) {
		return fmt.Errorf("%w: the prefix %s is reserved for rkms's own keys", ErrInvalidKeyID, envelope.ReservedKeyIDPrefix)
	}
	return nil
}

// jsonScalar returns the one string or integer that sel selects in body, read as Go's
// encoding/json reads it. A document in which it is ambiguous is refused: the member present
// twice, or in two case variants (encoding/json binds either), or a number in any spelling but
// plain decimal digits (1e2 and 100 name the same number, 100.0 too).
func jsonScalar(body []byte, p *idPart, what string) (string, error) {
	missing := func(why string) error {
		return badInput("%s source: json %s %s", what, p.sel, why)
	}
	if len(body) == 0 {
		return "", missing("missing (no request body)")
	}
	var vals []string
	_, err := p.plan.Visit(body, func(_ *jsonfield.Field, raw []byte) error {
		vals = append(vals, string(raw)) // copied: raw aliases body
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("%s source: %w", what, err)
	}
	if len(vals) != 1 {
		return "", missing("must select exactly one value (no duplicate or case-variant member)")
	}
	raw := vals[0]
	switch {
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal([]byte(raw), &s); err != nil {
			return "", fmt.Errorf("%s source: %w: %w", what, jsonfield.ErrInvalidJSON, err)
		}
		return s, nil
	case raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'):
		if !isPlainInteger(raw) {
			return "", missing("is a number spelled with a fraction, an exponent or -0 (ambiguous)")
		}
		return string(raw), nil
	default:
		return "", missing("is not a string or a number")
	}
}

var (
	errHeaderMissing  = errors.New("missing")
	errHeaderMultiple = errors.New("has several different values")
)

// single returns the value of a header that must occur with one value (repeats of the same
// value are tolerated).
func single(h Headers, name string) (string, error) {
	first, seen := "", false
	for i := range h.Len() {
		n, v := h.At(i)
		if n != name {
			continue
		}
		if !seen {
			first, seen = v, true
			continue
		}
		if v != first {
			if first == "" {
				return "", errHeaderMissing
			}
			return "", errHeaderMultiple
		}
	}
	if first == "" {
		return "", errHeaderMissing
	}
	return first, nil
}

// isPlainInteger reports whether raw is an integer in plain decimal: -?(0|[1-9][0-9]*), not -0.
func isPlainInteger(raw string) bool {
	d := strings.TrimPrefix(raw, "-")
	if d == "" || (d[0] == '0' && len(d) > 1) || raw == "-0" {
		return false
	}
	for i := 0; i < len(d); i++ {
		if d[i] < '0' || d[i] > '9' {
			return false
		}
	}
	return true
}

// pathSegment returns the n-th segment (0-based) of path after its leading slash.
func pathSegment(path string, n int) (string, bool) {
	rest := strings.TrimPrefix(path, "/")
	for i := 0; ; i++ {
		seg, after, more := strings.Cut(rest, "/")
		if i == n {
			return seg, seg != ""
		}
		if !more {
			return "", false
		}
		rest = after
	}
}

// firstNonKeyIDByte returns the offset of the first byte of a template's literal text that
// may not appear in a key id ([envelope.IsKeyIDByte]), or -1.
func firstNonKeyIDByte(s string) int {
	for i := 0; i < len(s); i++ {
		if !envelope.IsKeyIDByte(s[i]) {
			return i
		}
	}
	return -1
}
