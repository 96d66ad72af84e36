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

// KeyID computes a key id from a request: literal text plus {header:NAME},
// {json:SELECTOR} (request body) and {path:N} (N-th segment, 0-based, of the canonical path)
// placeholders.
type KeyID struct {
	parts     []idPart
	needsBody bool
}

type partKind uint8

const (
	partLiteral partKind = iota
	partHeader
	partJSON
	partPath
)

type idPart struct {
	kind partKind
	text string              // literal text, or lowercase header name
	sel  *jsonfield.Selector // partJSON
	plan *jsonfield.Plan     // partJSON
	seg  int                 // partPath
}

// maxPathSegment bounds {path:N}; real routes are far shorter.
const maxPathSegment = 63

func parseKeyIDTemplate(s string) (*KeyID, error) {
	if s == "" {
		return nil, fmt.Errorf("empty key id template")
	}
	if len(s) > 4096 {
		return nil, fmt.Errorf("key id template longer than 4096 bytes")
	}
	t := &KeyID{}
	for rest := s; rest != ""; {
		open := strings.IndexAny(rest, "{}")
		if open < 0 {
			open = len(rest)
		}
		if open > 0 {
			lit := rest[:open]
			if i := firstInvalidIDByte(lit); i >= 0 {
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
		if err := ValidateKeyID(t.parts[0].text); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func parsePlaceholder(ph string) (idPart, error) {
	kindName, arg, ok := strings.Cut(ph, ":")
	if !ok || arg == "" {
		return idPart{}, fmt.Errorf("placeholder {%s}: want {header:NAME}, {json:SELECTOR} or {path:N}", ph)
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
		plan, err := jsonfield.NewPlan([]jsonfield.Field{{Selector: sel, Label: "key-id"}}, jsonfield.Options{})
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
	default:
		return idPart{}, fmt.Errorf("placeholder {%s}: unknown source %q (want header, json or path)", ph, kindName)
	}
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

// Source is what a key id is computed from.
type Source struct {
	Headers Headers
	Path    string // the canonical path ([Canonical])
	Body    []byte // request body; nil when the request has none
}

// NeedsBody reports whether the template reads the request body ({json:...}).
func (t *KeyID) NeedsBody() bool { return t.needsBody }

// Eval computes the key id. A missing source or an id that breaks the key id rule is an
// [*Error] (the client's fault); a body that is not JSON wraps jsonfield.ErrInvalidJSON.
func (t *KeyID) Eval(src *Source) (string, error) {
	var b strings.Builder
	for _, p := range t.parts {
		switch p.kind {
		case partLiteral:
			b.WriteString(p.text)
		case partHeader:
			v, err := single(src.Headers, p.text)
			if err != nil {
				return "", badInput("key id source: header %s %s", p.text, err)
			}
			b.WriteString(v)
		case partPath:
			seg, ok := pathSegment(src.Path, p.seg)
			if !ok {
				return "", badInput("key id source: path segment %d missing", p.seg)
			}
			b.WriteString(seg)
		case partJSON:
			v, err := jsonScalar(src.Body, &p)
			if err != nil {
				return "", err
			}
			b.WriteString(v)
		}
	}
	id := b.String()
	if err := ValidateKeyID(id); err != nil {
		return "", &Error{Reason: BadInput, Msg: "computed key id is invalid", Err: err}
	}
	return id, nil
}

// jsonScalar returns the one string or number that sel selects in body.
func jsonScalar(body []byte, p *idPart) (string, error) {
	missing := func(why string) error {
		return badInput("key id source: json %s %s", p.sel, why)
	}
	if len(body) == 0 {
		return "", missing("missing (no request body)")
	}
	var vals []string
	_, _, err := p.plan.Rewrite(nil, body, func(_ *jsonfield.Field, raw []byte) ([]byte, error) {
		vals = append(vals, string(raw)) // copied: raw aliases body
		return raw, nil
	})
	if err != nil {
		return "", fmt.Errorf("key id source: %w", err)
	}
	if len(vals) != 1 {
		return "", missing("must select exactly one value")
	}
	raw := vals[0]
	switch {
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal([]byte(raw), &s); err != nil {
			return "", fmt.Errorf("key id source: %w: %w", jsonfield.ErrInvalidJSON, err)
		}
		return s, nil
	case raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'):
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

// ValidateKeyID applies the keyring's key id rule: 1..256 bytes of [A-Za-z0-9._:/@+=-].
func ValidateKeyID(id string) error {
	if len(id) == 0 || len(id) > envelope.MaxKeyIDLen {
		return fmt.Errorf("%w: length must be 1..%d bytes", ErrInvalidKeyID, envelope.MaxKeyIDLen)
	}
	if i := firstInvalidIDByte(id); i >= 0 {
		return fmt.Errorf("%w: byte %d is not in [A-Za-z0-9._:/@+=-]", ErrInvalidKeyID, i)
	}
	return nil
}

func firstInvalidIDByte(s string) int {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("._:/@+=-", c) >= 0:
		default:
			return i
		}
	}
	return -1
}
