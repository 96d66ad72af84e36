package policy

import (
	"errors"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/rkms/rkms/extproc/jsonfield"
)

// ErrUnknownPolicy: the route names a policy that is not configured (a configuration error:
// fail closed).
var ErrUnknownPolicy = errors.New("route names a policy that is not configured")

// Set is a compiled list of policies. It is immutable and safe for concurrent use.
type Set struct {
	list   []*Policy
	byName map[string]*Policy
}

// Policies returns the policies in configuration order (do not modify).
func (s *Set) Policies() []*Policy { return s.list }

// Request is what a policy is selected on.
type Request struct {
	Method  string // :method
	Path    string // :path as received, query included
	HasBody bool   // a body follows the headers
}

// Select returns the policy for a request and the canonical form of its path ([Canonical]),
// which key ids read {path:N} from. named is the policy the Envoy route names ("" for none):
// it wins, and an unknown name wraps [ErrUnknownPolicy]. Otherwise the first policy whose match
// rules accept the request applies; nil means none does. A path that no policy matches in its
// canonical form but one would match once every escape is decoded, backslashes read as slashes,
// ';' parameters dropped and case folded is refused with an [*Error]: an application could read
// it either way, and only one of the readings would be encrypted.
func (s *Set) Select(named string, r Request) (*Policy, string, error) {
	canon := Canonical(r.Path)
	if named != "" {
		if p, ok := s.byName[named]; ok {
			return p, canon, nil
		}
		return nil, canon, ErrUnknownPolicy
	}
	for _, p := range s.list {
		if !p.matches || !p.methodMatches(r) {
			continue
		}
		if p.caseSens && strings.HasPrefix(canon, p.prefix) || !p.caseSens && hasUpperPrefix(canon, p.prefix) {
			return p, canon, nil
		}
	}
	if isPlain(cutQuery(r.Path)) {
		return nil, canon, nil // its loose form is its canonical form: nothing more to compare
	}
	var loose, looseFolded string
	for _, p := range s.list {
		if !p.matches || !p.methodMatches(r) {
			continue
		}
		var l string
		if p.caseSens {
			if loose == "" {
				loose = looseForm(r.Path)
			}
			l = loose
		} else {
			if looseFolded == "" {
				looseFolded = foldLoose(looseForm(r.Path), true)
			}
			l = looseFolded
		}
		if strings.HasPrefix(l, p.loose) {
			return nil, canon, badInput("ambiguous request path: it could reach the routes of policy %q once decoded; send it in canonical form", p.name)
		}
	}
	return nil, canon, nil
}

// methodMatches: a policy's methods limit only bodiless requests. A request with a body is
// covered whatever its method, so that no method (DELETE with a body, a lowercase spelling, a
// method-override header) carries tagged plaintext past the policy.
func (p *Policy) methodMatches(r Request) bool {
	if p.methods == nil || r.HasBody {
		return true
	}
	return p.methods[strings.ToUpper(r.Method)]
}

// Canonical returns the path rkms matches policies on: the :path without its query or fragment,
// with percent-escapes of unreserved characters (RFC 3986: letters, digits, - . _ ~) decoded,
// other escapes kept with upper-case hex digits, and dot segments and repeated slashes removed
// (path.Clean). It does not depend on how Envoy is configured to normalize paths.
func Canonical(raw string) string {
	raw = cutQuery(raw)
	if raw == "" || raw[0] != '/' {
		raw = "/" + raw // an authority-form or asterisk-form target never names a policy path
	}
	if strings.IndexByte(raw, '%') < 0 && isClean(raw) {
		return raw
	}
	var b strings.Builder
	b.Grow(len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c == '%' && i+2 < len(raw) && isHex(raw[i+1]) && isHex(raw[i+2]) {
			d := unhex(raw[i+1])<<4 | unhex(raw[i+2])
			if isUnreserved(d) {
				b.WriteByte(d)
			} else {
				b.WriteByte('%')
				b.WriteByte(upperHex(raw[i+1]))
				b.WriteByte(upperHex(raw[i+2]))
			}
			i += 2
			continue
		}
		b.WriteByte(c)
	}
	return cleanPath(b.String())
}

// looseForm reads a path the most permissive way an application might: every percent-escape
// decoded (twice, for double decoding), backslashes as slashes, NUL and control characters
// dropped, ';' parameters of each segment dropped, then path.Clean.
func looseForm(raw string) string {
	p := cutQuery(raw)
	for range 2 {
		p = percentDecode(p)
	}
	p = cutQuery(p) // a decoded '?' or '#' ends the path for some readers
	p = stripAuthority(p)
	var b strings.Builder
	b.Grow(len(p) + 1)
	b.WriteByte('/')
	inParam := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\' || c == '/':
			b.WriteByte('/')
			inParam = false
		case c == ';':
			inParam = true
		case inParam, c < 0x20, c == 0x7f:
		default:
			b.WriteByte(c)
		}
	}
	return cleanPath(b.String())
}

// foldLoose maps every rune to upper case, then to lower case, then to the smallest rune of
// its case-folding orbit (jsonfield.Fold), so that /PATİENTS, /patientſ or /patıents, which
// .NET's or Java's case-insensitive comparisons match with /patients, compare equal to it.
// Without fold it returns s.
func foldLoose(s string, fold bool) string {
	if !fold {
		return s
	}
	m := strings.Map(func(r rune) rune { return unicode.ToLower(unicode.ToUpper(r)) },
		strings.ToValidUTF8(s, string(utf8.RuneError)))
	return string(jsonfield.Fold(nil, []byte(m)))
}

// stripAuthority drops "scheme://authority" from an absolute-form target, which an
// application reads as its path.
func stripAuthority(p string) string {
	i := strings.Index(p, "://")
	if i <= 0 || strings.ContainsAny(p[:i], "/\\") {
		return p
	}
	rest := p[i+3:]
	if j := strings.IndexAny(rest, "/\\"); j >= 0 {
		return rest[j:]
	}
	return "/"
}

func cutQuery(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		return p[:i]
	}
	return p
}

// cleanPath is path.Clean for a path that starts with "/".
func cleanPath(p string) string {
	if isClean(p) {
		return p
	}
	return path.Clean(p)
}

// isClean reports whether path.Clean would leave p (a path starting with "/") unchanged, without
// allocating: no empty, "." or ".." segment, and no trailing slash except for "/".
func isClean(p string) bool {
	if p == "/" {
		return true
	}
	if p == "" || p[0] != '/' || p[len(p)-1] == '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] != '/' {
			continue
		}
		seg := p[i+1:]
		if j := strings.IndexByte(seg, '/'); j >= 0 {
			seg = seg[:j]
		}
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// isPlain reports whether p is a clean path of printable ASCII without '%', '\\' or ';': its
// loose form then equals it, and so does its case-folded loose form its ASCII upper case.
func isPlain(p string) bool {
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x21 || c >= 0x7f || c == '%' || c == '\\' || c == ';' {
			return false
		}
	}
	return isClean(p)
}

func percentDecode(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// canonicalPrefix checks a configured path prefix: it must already be canonical (so that what
// the operator wrote is what is compared) and ASCII. A trailing slash is kept.
func canonicalPrefix(pp string) (string, bool) {
	if pp == "" || pp[0] != '/' || strings.ContainsAny(pp, "?#% \t\\;") {
		return "", false
	}
	for i := 0; i < len(pp); i++ {
		if pp[i] < 0x21 || pp[i] >= 0x7f {
			return "", false
		}
	}
	trimmed := pp
	if len(pp) > 1 && pp[len(pp)-1] == '/' {
		trimmed = pp[:len(pp)-1]
	}
	if !isClean(trimmed) {
		return "", false
	}
	return pp, true
}

// hasUpperPrefix reports whether s starts with upper (ASCII upper case) ignoring ASCII case.
func hasUpperPrefix(s, upper string) bool {
	if len(s) < len(upper) {
		return false
	}
	for i := 0; i < len(upper); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != upper[i] {
			return false
		}
	}
	return true
}

func asciiUpper(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'a' && c <= 'z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; c >= 'a' && c <= 'z' {
					b[j] = c - ('a' - 'A')
				}
			}
			return string(b)
		}
	}
	return s
}

func isUnreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

func upperHex(c byte) byte {
	if c >= 'a' && c <= 'f' {
		return c - ('a' - 'A')
	}
	return c
}
