// Package envoygen renders the Envoy bootstrap of `rkms envoy-config`: the shipped
// envoy/ingress.yaml (its filters, limits and clusters, on the ports of the configuration's
// envoy section) with a route table generated from rkms's policies, so that the routes Envoy
// runs and the policies rkms applies cannot drift.
//
// # The route table
//
// In this order:
//
//  1. envoy.unprotected, in configuration order: an exact path or a prefix (case-sensitive),
//     GET/HEAD only (the :method header), and only without a content-length or
//     transfer-encoding header. ext_proc, the stamp check (rbac), jwt_authn are off there, so
//     such a request costs no ext_proc message. The buffer filter stays on with a 1-byte limit:
//     an HTTP/2 request can carry a body without either header, and it then gets 413 instead
//     of reaching the application past rkms (a single byte cannot hold a tagged field). A
//     request with a body, or of another method, falls through to the routes below.
//     internal/config refuses an unprotected route that takes a request some policy matches.
//  2. One route per policy with a match.path_prefix, in configuration order (rkms's own rule is
//     the first match in that order, so Envoy's first match names the policy rkms would pick):
//     the prefix, case-insensitive unless the policy is case_sensitive, with the route's
//     ext_proc settings from [extproc.RouteConfigFor] in typed_per_filter_config (initial
//     metadata, processing mode, request and response attributes, on the ext_proc filter it
//     names: another than the main one is enabled with an envoy.config.route.v3.FilterConfig
//     and the main one disabled; the buffer filter off on streaming routes). A policy whose
//     key id or context
//     reads {jwt:...} requires a token (jwt_authn requirement "tenant"); the others verify one
//     when present ("tenant_if_present"). A policy that lists methods matches them on :method,
//     and is followed by a route for the same prefix that names no policy: rkms's methods limit
//     only bodiless requests, and rkms decides those itself. Policies selected only by name get
//     no route of their own.
//  3. The catch-all "/": no policy named, rkms applies its own matching (one message when no
//     policy covers the request), token verified when present.
//
// Output is YAML without the comments of the shipped file, except the "# port:NAME" and
// "# file:NAME" markers, so that envoy.Render and envoy.RenderFiles still work on it.
package envoygen
