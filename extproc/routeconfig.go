package extproc

import (
	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"

	"github.com/rkms/rkms/extproc/policy"
)

// The ext_proc filter instances of the shipped configurations (their http_filters names).
const (
	// MainFilterName is the ext_proc filter every route uses unless it names another: BUFFERED
	// bodies, allow_mode_override (rkms asks per request for the messages it needs; a request
	// no policy covers costs one message), on by default.
	MainFilterName = "envoy.filters.http.ext_proc"
	// PipelinedFilterName is the second ext_proc filter: send_body_without_waiting_for_header_response
	// with STREAMED request bodies (one message: the buffer filter before it delivers the body
	// whole) and allow_content_length_header, off by default (disabled: true in http_filters).
	// rkms serves it (pipelined.go); the shipped configurations do not include it
	// (envoy/README.md, "Fewest round trips", says why; internal/testing/envoytest.PipelinedFilter
	// is its configuration).
	// A route it serves enables it (typed_per_filter_config[PipelinedFilterName] is an
	// envoy.config.route.v3.FilterConfig{config: ExtProcPerRoute{overrides: ...}}, disabled
	// false) and disables MainFilterName (ExtProcPerRoute{disabled: true}). See pipelined.go.
	PipelinedFilterName = "rkms.ext_proc.pipelined"
)

// RouteConfig is what the Envoy route of one policy sets for rkms's ext_proc filters, so that
// Envoy sends rkms exactly the messages the policy needs, with as few waits as Envoy 1.40
// allows (envoy/README.md, "Fewest round trips"). `rkms envoy-config` renders it into the
// route's typed_per_filter_config; TestMessagesPerRouteKind checks it against the real Envoy
// and TestShippedRouteConfig checks the shipped ingress.yaml against it. It is derived from
// the compiled policy only, so a configuration and the Envoy routes rendered from it cannot
// drift.
type RouteConfig struct {
	// Filter is the http_filters name of the ext_proc filter that serves the route:
	// MainFilterName (what RouteConfigFor returns today) or PipelinedFilterName, which rkms
	// supports and the shipped configurations do not use. When it is PipelinedFilterName the
	// route disables MainFilterName and enables PipelinedFilterName with the overrides below.
	Filter string
	// Metadata is the gRPC initial metadata of the route's ext_proc streams
	// (overrides.grpc_initial_metadata): the policy's name under PolicyMetadataKey, and
	// StreamMetadataKey on streaming routes.
	Metadata [][2]string
	// Mode is the route's static processing mode (overrides.processing_mode). Routes of the
	// pipelined filter need it exact: Envoy ignores rkms's mode_override there.
	Mode *filterv3.ProcessingMode
	// RequestAttributes and ResponseAttributes, when not nil, replace the filter's attributes
	// on this route (overrides.request_attributes / response_attributes). RouteConfigFor leaves
	// them nil: Envoy 1.40 ignores them per route (TestEnvoyModes "per-route attributes").
	RequestAttributes, ResponseAttributes []string
	// Buffered says whether the request body is buffered whole before ext_proc opens its stream
	// (the buffer filter stays on): false on streaming routes. The pipelined filter relies on
	// it: it must get the body in one message.
	Buffered bool
	// ResponseOnly says the policy's bodiless GET and HEAD requests may skip the request
	// headers: 2 messages (response headers, response body) instead of 3 (the policy's
	// response_only, see ResponseOnlyCapable). `rkms envoy-config` then renders, before the
	// policy's route, a route for those requests only (:method GET|HEAD, no content-length, no
	// transfer-encoding, a path without '%' or ':', a request body over 1 byte refused), with
	// ResponseOnlyMode, the same Metadata, accept-encoding removed and the stamp check off:
	// nothing reaches rkms before the app answers, and a request without a body carries no
	// tagged plaintext for the stamp to keep from the app. Every other request to the prefix
	// takes the policy's route (stamped). envoy/README.md, "Fewest round trips".
	ResponseOnly bool
}

// ResponseOnlyPathRegex is what the :path (with its query) of a request must match, whole, to
// take a route whose request rkms does not see (a ResponseOnly route, an unprotected prefix): no
// '%' and no ':', so that no ciphertext ("rkms:", percent-encoded or not) can be in it (rkms
// checks the path of every request it sees for one, and sees none of these); and no ';', which
// some application servers read as a path parameter ("/reports/..;/patients" is /patients for
// Tomcat), so that such a path cannot reach another policy's resource past rkms. A path that
// does not match takes the stamped route.
const ResponseOnlyPathRegex = "[^%:;]*"

// ResponseOnlyMode is the processing mode of a ResponseOnly route: the request headers are
// skipped, the response headers and the buffered response body sent.
func ResponseOnlyMode() *filterv3.ProcessingMode {
	return &filterv3.ProcessingMode{
		RequestHeaderMode:   filterv3.ProcessingMode_SKIP,
		RequestBodyMode:     filterv3.ProcessingMode_NONE,
		RequestTrailerMode:  filterv3.ProcessingMode_SKIP,
		ResponseHeaderMode:  filterv3.ProcessingMode_SEND,
		ResponseBodyMode:    filterv3.ProcessingMode_BUFFERED,
		ResponseTrailerMode: filterv3.ProcessingMode_SKIP,
	}
}

// ResponseOnlyCapable reports whether policy p's bodiless GET and HEAD requests are processed
// from the response alone (RouteConfig.ResponseOnly): the policy sets response_only, which
// policy.Compile accepts only when it decrypts response fields and encrypts none, does not
// stream, has no index_query, and its key id and context read only literals and {jwt:CLAIM}s
// (Envoy 1.40 sends the jwt_authn payload in every message's metadata_context, and no request
// attributes when no request message is sent: TestEnvoyModesResponseOnly). rkms refuses a
// stream that starts with the response headers of a route in ResponseOnlyMode for any other
// policy.
func ResponseOnlyCapable(p *policy.Policy) bool {
	return p.ResponseOnly() && !p.Streams(false) && !p.Streams(true)
}

// RouteConfigFor returns the Envoy route settings of policy p.
//
//   - A streaming policy: MainFilterName, FULL_DUPLEX_STREAMED both ways (duplex.go), no buffer.
//   - Any other policy: MainFilterName, BUFFERED. A request with a body costs request headers,
//     then body; a bodiless one its headers only; the response costs headers and body only
//     when the policy decrypts or encrypts in it (rkms's mode_override says the same per
//     request). Not PipelinedFilterName: it saved no measurable latency and it lets a flood of
//     bodies past rkms's admission at the headers (envoy/README.md, "Fewest round trips").
//   - ResponseOnly when ResponseOnlyCapable: bodiless GET/HEAD requests in 2 messages.
func RouteConfigFor(p *policy.Policy) RouteConfig {
	rc := RouteConfig{Filter: MainFilterName, Metadata: [][2]string{{PolicyMetadataKey, p.Name()}}, Buffered: true}
	if p.Streams(false) || p.Streams(true) {
		rc.Filter = MainFilterName
		rc.Metadata = append(rc.Metadata, [2]string{StreamMetadataKey, StreamMetadataValue})
		rc.Buffered = false
		rc.Mode = &filterv3.ProcessingMode{
			RequestHeaderMode:   filterv3.ProcessingMode_SEND,
			ResponseHeaderMode:  filterv3.ProcessingMode_SEND,
			RequestBodyMode:     filterv3.ProcessingMode_FULL_DUPLEX_STREAMED,
			ResponseBodyMode:    filterv3.ProcessingMode_FULL_DUPLEX_STREAMED,
			RequestTrailerMode:  filterv3.ProcessingMode_SEND,
			ResponseTrailerMode: filterv3.ProcessingMode_SEND,
		}
		return rc
	}
	// Every body on a policy route is read (encrypted, or inspected for tripwires); the
	// response only when the policy transforms it.
	rc.Mode = policyMode(true, !p.Response().Empty())
	rc.Mode.RequestHeaderMode = filterv3.ProcessingMode_SEND
	rc.Mode.RequestTrailerMode = filterv3.ProcessingMode_SKIP
	rc.Mode.ResponseTrailerMode = filterv3.ProcessingMode_SKIP
	rc.ResponseOnly = ResponseOnlyCapable(p)
	return rc
}
