package extproc

import (
	"context"
	"fmt"

	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/rkms/rkms/extproc/policy"
)

// Response-only streams (RouteConfig.ResponseOnly): on the route of a bodiless GET or HEAD whose
// policy only decrypts the response, Envoy skips the request headers and the stream starts with
// the response headers. rkms processes it as the response phase of the same request on the
// policy's normal route, with the same checks; what it would have learnt from the request
// headers is either not needed (ResponseOnlyCapable) or comes with the first message (the
// verified JWT payload in metadata_context).

// responseOnlyRoute reports whether req, the first message of a stream, comes from a route with
// ResponseOnlyMode: Envoy sends the route's body modes in the first message's protocol_config,
// request body NONE and response body BUFFERED there. A reply Envoy makes itself on a policy
// route with the usual mode (a refused token, a malformed request) also starts with the response
// headers, but its protocol_config says BUFFERED for the request body: it stays a local reply.
func responseOnlyRoute(req *extprocv3.ProcessingRequest) bool {
	pc := req.GetProtocolConfig()
	return pc != nil && pc.GetRequestBodyMode() == filterv3.ProcessingMode_NONE &&
		pc.GetResponseBodyMode() == filterv3.ProcessingMode_BUFFERED
}

// responseOnly starts a response-only stream at its response headers: the policy named by the
// route (it must name one, ResponseOnlyCapable, or the stream is refused), the key id and context
// from the verified JWT, then the response headers as on any route.
func (p *processor) responseOnly(ctx context.Context, req *extprocv3.ProcessingRequest, h *extprocv3.HttpHeaders) (*extprocv3.ProcessingResponse, error) {
	// The route takes only requests without a body: the request is complete, and was never seen.
	p.reqHeaders, p.reqEnded = true, true
	p.identities(req)
	p.log = nil
	if p.namedErr != nil {
		return nil, p.namedErr
	}
	if p.named == "" {
		return nil, newError(kindPolicy, phaseResponse, "policy configuration error",
			fmt.Errorf("a route that skips the request headers names no policy (gRPC metadata %s)", PolicyMetadataKey))
	}
	pol, _, err := p.s.policies.Select(p.named, policy.Request{})
	if err != nil {
		return nil, err
	}
	if !ResponseOnlyCapable(pol) {
		return nil, newError(kindPolicy, phaseResponse, "policy configuration error",
			fmt.Errorf("the route skips the request headers, which policy %q needs (not ResponseOnlyCapable)", pol.Name()))
	}
	if p.jwt == nil && (len(pol.KeyID().Claims()) > 0 || len(pol.Context().Claims()) > 0) {
		// The route requires a verified token (`rkms envoy-config` renders requirement "tenant"
		// when a template reads a claim), so a stream without one is Envoy's own reply to a
		// request jwt_authn refused: nothing reached the app. It passes unchanged, and a body
		// passed unchanged is not decrypted, so even a route that lets tokenless requests
		// through reveals nothing here.
		p.reqHeaders = false
		return p.responseHeaders(ctx, h)
	}
	p.pol = pol
	p.log = nil // with the policy from now on
	p.needKeyID = true
	if err := p.evalIDs(nil, false); err != nil {
		return nil, err
	}
	p.debug("response-only stream: request headers skipped by the route")
	return p.responseHeaders(ctx, h)
}
