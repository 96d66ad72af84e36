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

// ResponsePhase reports whether the template can be computed from what Envoy sends on a stream
// that starts with the response headers (a route that skips the request headers): literals and
// {jwt:CLAIM} only, the verified JWT payload coming in every message's metadata_context. A
// {header:}, {path:}, {json:} or {peer:} part needs the request (headers, body or the
// request_attributes Envoy sends only with a request message). A nil template (no context)
// needs nothing.
func (t *KeyID) ResponsePhase() bool {
	if t == nil {
		return true
	}
	for _, p := range t.parts {
		if p.kind != partLiteral && p.kind != partJWT {
			return false
		}
	}
	return true
}
