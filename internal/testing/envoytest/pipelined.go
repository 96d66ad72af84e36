package envoytest

import "testing"

// PipelinedFilter is the http_filters entry of the pipelined ext_proc filter
// (extproc.PipelinedFilterName), indented for envoy/ingress.yaml's filter list: the main
// filter's settings plus send_body_without_waiting_for_header_response, a STREAMED request
// body and allow_content_length_header, off unless a route enables it. rkms serves it
// (extproc/pipelined.go); the shipped configurations do not include it (envoy/README.md,
// "Fewest round trips"), the tests that measure and count it add it with [WithPipelinedFilter].
const PipelinedFilter = `                  - name: rkms.ext_proc.pipelined
                    disabled: true
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor
                      grpc_service:
                        envoy_grpc: {cluster_name: rkms}
                      failure_mode_allow: false
                      status_on_error: {code: 503}
                      message_timeout: 2s
                      send_body_without_waiting_for_header_response: true
                      allow_content_length_header: true
                      metadata_options:
                        receiving_namespaces: {untyped: [rkms]}
                        forwarding_namespaces: {untyped: [envoy.filters.http.jwt_authn]}
                      request_attributes:
                        - connection.uri_san_peer_certificate
                        - connection.dns_san_peer_certificate
                        - source.address
                      processing_mode:
                        request_header_mode: SEND
                        response_header_mode: SEND
                        request_body_mode: STREAMED
                        response_body_mode: BUFFERED
                        request_trailer_mode: SKIP
                        response_trailer_mode: SKIP
`

// WithPipelinedFilter adds [PipelinedFilter] to an ingress.yaml-like configuration, right after
// the main ext_proc filter (before the stamp check).
func WithPipelinedFilter(t testing.TB, cfg string) string {
	t.Helper()
	const rbac = "                  - name: envoy.filters.http.rbac\n"
	return ReplaceOnce(t, cfg, rbac, PipelinedFilter+rbac)
}
