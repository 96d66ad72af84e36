package policy

// What the Envoy route generator (`rkms envoy-config`, internal/envoygen) reads of a policy
// besides extproc.RouteConfigFor: the same rules rkms matches with, so that the routes it writes
// cannot disagree with them.

// ValidPathPrefix reports whether pp is accepted as a match.path_prefix: a canonical path
// ("/" first; no query, fragment, space, percent escape, backslash, ';', dot segment or repeated
// slash; printable ASCII). A trailing slash is allowed.
func ValidPathPrefix(pp string) bool {
	_, ok := canonicalPrefix(pp)
	return ok
}

// Claims lists the JWT claims the template reads ({jwt:CLAIM}), in order: a route whose key id
// or context reads one needs a verified token.
func (t *KeyID) Claims() []string {
	if t == nil {
		return nil
	}
	var out []string
	for _, p := range t.parts {
		if p.kind == partJWT {
			out = append(out, p.text)
		}
	}
	return out
}
