package extproc

import (
	"slices"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
)

// Pipelined request bodies (envoy/README.md, "Fewest round trips").
//
// A route served by an ext_proc filter with send_body_without_waiting_for_header_response and
// request_body_mode STREAMED (the second filter instance of the shipped configurations,
// [PipelinedFilterName]) sends rkms the request headers and, right after, the request body
// (one message: the buffer filter before ext_proc delivers it whole), without waiting for the
// answer to the headers. rkms then holds its answer to the headers until the body is
// processed, and sends both answers back to back: the request waits for one round trip to
// rkms instead of two.
//
// Envoy continues the request headers (to the stamp check, then the router, which sends them
// upstream) as soon as it reads the headers answer. So that answer is the one that carries
// the stamp and every header change of the request: the body's new content-length (the
// filter must set allow_content_length_header, or Envoy removes content-length and the app
// gets a chunked body) and the content-encoding removed from a decoded body. It is sent only
// once the body has been read and transformed; a refusal at the body answers the headers with
// the ImmediateResponse instead, so an unprocessed body is never stamped. The body answer
// then carries the body only.
//
// rkms knows a stream is pipelined from the protocol_config of its first message, which Envoy
// fills from the filter's configuration: no route or client can claim it. A body that does not
// come in one message (end_of_stream false: trailers, or no buffer filter before ext_proc) is
// refused.

// pipelinedConfig reports whether the ext_proc filter that opened the stream sends the request
// body without waiting for the headers answer (its protocol_config).
func pipelinedConfig(req *extprocv3.ProcessingRequest) bool {
	pc := req.GetProtocolConfig()
	return pc.GetSendBodyWithoutWaitingForHeaderResponse() && pc.GetRequestBodyMode() == filterv3.ProcessingMode_STREAMED
}

// holdHeaders keeps the answer to the request headers (with header mutation mut) until the
// body has been processed: see [processor.releaseHeaders].
func (p *processor) holdHeaders(mut *extprocv3.HeaderMutation) {
	p.held = true
	p.heldMut = mut
}

// releaseHeaders turns body, the answer to a pipelined request body, into the pair of answers
// Envoy waits for: the held headers answer, stamped and carrying the body answer's header
// changes, goes first (p.before), and body keeps only the body.
func (p *processor) releaseHeaders(body *extprocv3.ProcessingResponse) *extprocv3.ProcessingResponse {
	cr := body.GetRequestBody().GetResponse()
	mut := mergeMutations(p.heldMut, cr.GetHeaderMutation())
	if cr != nil {
		cr.HeaderMutation = nil
	}
	r := p.hresp.fill(phaseRequest, mut, nil)
	r.DynamicMetadata = p.s.stamps.of(p.pol)
	p.before = r
	p.held, p.heldMut = false, nil
	body.DynamicMetadata = nil
	return body
}

// mergeMutations returns a mutation with the changes of a and then b (either may be nil). It
// never modifies a or b: a may be one the server shares between streams (modes).
func mergeMutations(a, b *extprocv3.HeaderMutation) *extprocv3.HeaderMutation {
	switch {
	case b == nil:
		return a
	case a == nil:
		return b
	}
	return &extprocv3.HeaderMutation{
		SetHeaders:    slices.Concat(a.GetSetHeaders(), b.GetSetHeaders()),
		RemoveHeaders: slices.Concat(a.GetRemoveHeaders(), b.GetRemoveHeaders()),
	}
}
