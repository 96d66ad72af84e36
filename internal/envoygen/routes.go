package envoygen

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	mutationv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	bufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/buffer/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/rkms/rkms/extproc"
	"github.com/rkms/rkms/extproc/policy"
	"github.com/rkms/rkms/internal/config"
)

// The HTTP filters of envoy/ingress.yaml that routes configure, and its jwt_authn requirements.
const (
	filterJWT     = "envoy.filters.http.jwt_authn"
	filterExtProc = "envoy.filters.http.ext_proc"
	filterRBAC    = "envoy.filters.http.rbac"
	filterBuffer  = "envoy.filters.http.buffer"
	filterHeaders = "envoy.filters.http.header_mutation"

	requireToken          = "tenant"
	requireTokenIfPresent = "tenant_if_present"

	appCluster = "app"
)

// Route timeouts, as in envoy/ingress.yaml: under rkms's idle_timeout (30 s by default), so that
// Envoy gives up first. A streaming response must be complete within streamTimeout.
const (
	routeTimeout  = 15 * time.Second
	streamTimeout = 25 * time.Second
)

// unprotectedBodyLimit is the buffer filter's limit on unprotected routes: a request that has a
// body there (HTTP/2 without content-length) gets 413 beyond it. Envoy's minimum.
const unprotectedBodyLimit = 1

// routes returns the route table for cfg (see the package documentation).
func routes(cfg *config.Config) ([]*routev3.Route, error) {
	set, err := cfg.PolicySet()
	if err != nil {
		return nil, fmt.Errorf("compile policies: %w", err)
	}
	compiled := set.Policies()
	if len(compiled) != len(cfg.Policies) {
		return nil, fmt.Errorf("compile policies: %d compiled of %d configured", len(compiled), len(cfg.Policies))
	}
	var out []*routev3.Route
	for _, u := range cfg.Envoy.Unprotected {
		r, err := unprotectedRoute(u)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	for i, pc := range cfg.Policies {
		if pc.Match.PathPrefix == "" {
			continue // selected by name, or by methods on every path: the catch-all's
		}
		rs, err := policyRoutes(&pc, compiled[i])
		if err != nil {
			return nil, fmt.Errorf("policy %q: %w", pc.Name, err)
		}
		out = append(out, rs...)
	}
	catchAll, err := deferRoute(&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}})
	if err != nil {
		return nil, err
	}
	return append(out, catchAll), nil
}

// unprotectedRoute is a route that skips rkms for bodiless GET/HEAD requests (config checked).
func unprotectedRoute(u config.UnprotectedRoute) (*routev3.Route, error) {
	m := &routev3.RouteMatch{Headers: []*routev3.HeaderMatcher{
		methodMatcher(u.UnprotectedMethods()),
		absent("content-length"),
		absent("transfer-encoding"),
	}}
	if u.Path != "" {
		m.PathSpecifier = &routev3.RouteMatch_Path{Path: u.Path}
	} else {
		m.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: u.Prefix}
		// Under a prefix, a path parameter could name another resource for the app
		// ("/static/..;/patients"): such paths go to rkms (an exact path cannot).
		m.Headers = append(m.Headers, pathMatcher())
	}
	// ext_proc and the stamp check are left out of the route's filter chain
	// (envoy.config.route.v3.FilterConfig disabled: Envoy does not create them for the request),
	// not only told to pass: the cheapest a filter can be. A route that disables ext_proc must
	// disable the stamp check too. Safe because no filter that remains on the route can clear
	// the route cache and move the request to another route after the chain is built.
	// jwt_authn stays in the chain, told to verify nothing: it still strips a client's
	// x-tenant-id (its claim_to_headers header), the second layer behind header_mutation.
	return route(m, routeTimeout, map[string]proto.Message{
		filterJWT:     &jwtv3.PerRouteConfig{RequirementSpecifier: &jwtv3.PerRouteConfig_Disabled{Disabled: true}},
		filterExtProc: &routev3.FilterConfig{Disabled: true},
		filterRBAC:    &routev3.FilterConfig{Disabled: true},
		filterBuffer: &bufferv3.BufferPerRoute{Override: &bufferv3.BufferPerRoute_Buffer{Buffer: &bufferv3.Buffer{
			MaxRequestBytes: wrapperspb.UInt32(unprotectedBodyLimit)}}},
	})
}

// policyRoutes is the route that names policy p, and after it, when p lists methods, the route
// that leaves the rest of its prefix to rkms.
func policyRoutes(pc *policy.Config, p *policy.Policy) ([]*routev3.Route, error) {
	rc := extproc.RouteConfigFor(p)
	match := func() *routev3.RouteMatch {
		m := &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: pc.Match.PathPrefix}}
		if !pc.CaseSensitive {
			m.CaseSensitive = wrapperspb.Bool(false)
		}
		return m
	}
	named := match()
	if len(pc.Match.Methods) > 0 {
		methods := make([]string, len(pc.Match.Methods))
		for i, m := range pc.Match.Methods {
			methods[i] = strings.ToUpper(m)
		}
		named.Headers = []*routev3.HeaderMatcher{methodMatcher(methods)}
	}
	require := requireTokenIfPresent
	if len(p.KeyID().Claims()) > 0 || len(p.Context().Claims()) > 0 {
		require = requireToken
	}
	filters := map[string]proto.Message{
		filterJWT: &jwtv3.PerRouteConfig{RequirementSpecifier: &jwtv3.PerRouteConfig_RequirementName{RequirementName: require}},
	}
	perRoute := &extprocv3.ExtProcPerRoute{Override: &extprocv3.ExtProcPerRoute_Overrides{Overrides: overrides(rc)}}
	if rc.Filter == "" || rc.Filter == filterExtProc {
		filters[filterExtProc] = perRoute
	} else {
		// Another ext_proc filter serves the route: it is off by default (disabled in
		// http_filters), so the route enables it with the overrides, and turns the main one off.
		a, err := anypb.New(perRoute)
		if err != nil {
			return nil, fmt.Errorf("ext_proc per-route config: %w", err)
		}
		filters[rc.Filter] = &routev3.FilterConfig{Config: a}
		filters[filterExtProc] = &extprocv3.ExtProcPerRoute{Override: &extprocv3.ExtProcPerRoute_Disabled{Disabled: true}}
	}
	var out []*routev3.Route
	if rc.ResponseOnly {
		r, err := responseOnlyRoute(match(), pc.Match.Methods, require, rc)
		if err != nil {
			return nil, err
		}
		if r != nil {
			out = append(out, r)
		}
	}
	timeout := routeTimeout
	if !rc.Buffered {
		filters[filterBuffer] = &bufferv3.BufferPerRoute{Override: &bufferv3.BufferPerRoute_Disabled{Disabled: true}}
		timeout = streamTimeout
	}
	r, err := route(named, timeout, filters)
	if err != nil {
		return nil, err
	}
	out = append(out, r)
	if len(pc.Match.Methods) == 0 {
		return out, nil
	}
	rest, err := deferRoute(match())
	return append(out, rest), err
}

// responseOnlyRoute is the route of a ResponseOnly policy's bodiless GET and HEAD requests (those
// of methods, when the policy lists any), before its normal route: the same prefix, a
// :method GET|HEAD, no content-length or transfer-encoding, a path without '%' or ':'
// (extproc.ResponseOnlyPathRegex), the same token requirement; ext_proc in
// extproc.ResponseOnlyMode with the policy's metadata; the stamp check off (rkms answers no
// request message, so nothing can stamp it; a request without a body carries no tagged
// plaintext); the buffer filter's limit 1 byte (an HTTP/2 body without either header gets
// 413); and accept-encoding removed, as rkms's request headers answer removes it on the
// normal route, so that the app answers uncompressed. nil when methods has neither GET nor HEAD.
func responseOnlyRoute(m *routev3.RouteMatch, methods []string, require string, rc extproc.RouteConfig) (*routev3.Route, error) {
	var bodiless []string
	for _, want := range []string{"GET", "HEAD"} {
		if len(methods) == 0 || slices.ContainsFunc(methods, func(s string) bool { return strings.EqualFold(s, want) }) {
			bodiless = append(bodiless, want)
		}
	}
	if len(bodiless) == 0 {
		return nil, nil
	}
	m.Headers = []*routev3.HeaderMatcher{
		methodMatcher(bodiless),
		absent("content-length"),
		absent("transfer-encoding"),
		pathMatcher(),
	}
	o := overrides(rc)
	o.ProcessingMode = extproc.ResponseOnlyMode()
	return route(m, routeTimeout, map[string]proto.Message{
		filterJWT:     &jwtv3.PerRouteConfig{RequirementSpecifier: &jwtv3.PerRouteConfig_RequirementName{RequirementName: require}},
		filterExtProc: &extprocv3.ExtProcPerRoute{Override: &extprocv3.ExtProcPerRoute_Overrides{Overrides: o}},
		// No rbac field: the stamp check is off on this route only.
		filterRBAC: &rbacv3.RBACPerRoute{},
		filterBuffer: &bufferv3.BufferPerRoute{Override: &bufferv3.BufferPerRoute_Buffer{Buffer: &bufferv3.Buffer{
			MaxRequestBytes: wrapperspb.UInt32(unprotectedBodyLimit)}}},
		// x-tenant-id too: the filter's own removal, in case a route's mutations replace it.
		filterHeaders: &headermutationv3.HeaderMutationPerRoute{Mutations: &headermutationv3.Mutations{
			RequestMutations: []*mutationv3.HeaderMutation{
				{Action: &mutationv3.HeaderMutation_Remove{Remove: "accept-encoding"}},
				{Action: &mutationv3.HeaderMutation_Remove{Remove: "x-tenant-id"}},
			}}},
	})
}

// overrides renders rc's metadata, processing mode and attributes as the route's ext_proc
// overrides.
func overrides(rc extproc.RouteConfig) *extprocv3.ExtProcOverrides {
	o := &extprocv3.ExtProcOverrides{
		RequestAttributes:  slices.Clone(rc.RequestAttributes),
		ResponseAttributes: slices.Clone(rc.ResponseAttributes),
		ProcessingMode:     proto.CloneOf(rc.Mode),
	}
	for _, kv := range rc.Metadata {
		o.GrpcInitialMetadata = append(o.GrpcInitialMetadata, &corev3.HeaderValue{Key: kv[0], Value: kv[1]})
	}
	return o
}

// deferRoute names no policy: rkms applies its own matching, a token is verified when present.
func deferRoute(m *routev3.RouteMatch) (*routev3.Route, error) {
	return route(m, routeTimeout, map[string]proto.Message{
		filterJWT: &jwtv3.PerRouteConfig{RequirementSpecifier: &jwtv3.PerRouteConfig_RequirementName{RequirementName: requireTokenIfPresent}},
	})
}

func route(m *routev3.RouteMatch, timeout time.Duration, filters map[string]proto.Message) (*routev3.Route, error) {
	r := &routev3.Route{
		Match: m,
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: appCluster},
			Timeout:          durationpb.New(timeout),
		}},
		TypedPerFilterConfig: map[string]*anypb.Any{},
	}
	for name, cfg := range filters {
		a, err := anypb.New(cfg)
		if err != nil {
			return nil, fmt.Errorf("route %v: %s: %w", m, name, err)
		}
		r.TypedPerFilterConfig[name] = a
	}
	if err := r.ValidateAll(); err != nil {
		return nil, fmt.Errorf("route %v: %w", m, err)
	}
	return r, nil
}

// methodMatcher matches :method against methods exactly (RE2, whole value).
func methodMatcher(methods []string) *routev3.HeaderMatcher {
	quoted := make([]string, 0, len(methods))
	for _, m := range methods {
		if q := regexp.QuoteMeta(m); !slices.Contains(quoted, q) {
			quoted = append(quoted, q)
		}
	}
	return &routev3.HeaderMatcher{Name: ":method", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
		StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{
			SafeRegex: &matcherv3.RegexMatcher{Regex: strings.Join(quoted, "|")}}}}}
}

// absent matches a request without header name.
func absent(name string) *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: false}}
}

// pathMatcher matches the :path (with its query) of requests that may take a route whose
// request rkms does not see (extproc.ResponseOnlyPathRegex).
func pathMatcher() *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{Name: ":path", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
		MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: extproc.ResponseOnlyPathRegex}}}}}
}
