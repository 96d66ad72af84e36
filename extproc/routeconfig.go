package extproc

import (
	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"

	"github.com/rkms/rkms/extproc/policy"
)

// RouteConfig is what the Envoy route of one policy sets for rkms's ext_proc filter, so that
// Envoy sends rkms exactly the messages the policy needs and no more. `rkms envoy-config`
// renders it into the route's typed_per_filter_config; the message-count test checks it against
// the real Envoy. It is derived from the compiled policy only, so a configuration and the
// Envoy routes rendered from it cannot drift.
type RouteConfig struct {
	// Metadata is the gRPC initial metadata of the route's ext_proc streams
	// (overrides.grpc_initial_metadata): the policy's name under PolicyMetadataKey, and
	// StreamMetadataKey on streaming routes.
	Metadata [][2]string
	// Mode is the route's static processing mode (overrides.processing_mode).
	Mode *filterv3.ProcessingMode
	// RequestAttributes and ResponseAttributes, when not nil, replace the filter's attributes
	// on this route (overrides.request_attributes / response_attributes).
	RequestAttributes, ResponseAttributes []string
	// Buffered says whether the request body is buffered whole before ext_proc opens its stream
	// (the buffer filter stays on): false on streaming routes.
	Buffered bool
}

// RouteConfigFor returns the Envoy route settings of policy p.
func RouteConfigFor(p *policy.Policy) RouteConfig {
	rc := RouteConfig{Metadata: [][2]string{{PolicyMetadataKey, p.Name()}}, Buffered: true}
	if p.Streams(false) || p.Streams(true) {
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
	// response only when the policy decrypts in it.
	rc.Mode = policyMode(true, !p.Response().Empty())
	rc.Mode.RequestHeaderMode = filterv3.ProcessingMode_SEND
	return rc
}
