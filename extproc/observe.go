package extproc

import (
	"context"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/rkms/rkms/extproc/policy"
)

// Observer receives what the server did, for metrics. Every label it is given is bounded: policy
// is the name of a configured policy or "" (no policy applies, or none was chosen yet), phase and
// outcome come from fixed sets, and no key id, header or body ever reaches it. Calls happen on the
// stream's goroutine: implementations must be safe for concurrent use and quick.
type Observer interface {
	// ObserveRequest is called once per ext_proc message (ProcessingRequest) answered. phase is
	// the message kind: "request_headers", "request_body", "request_trailers", "response_headers",
	// "response_body", "response_trailers" or "unknown". outcome is "continue" (the request goes
	// on), "refused" (rkms made Envoy answer the client with status) or "protocol_error" (the
	// stream was ended with a gRPC error; status is 0). dur is the time spent answering the
	// message, key lookups included.
	ObserveRequest(policy, phase, outcome string, status int, dur time.Duration)
	// ObserveFields is called after a body was transformed: n values were sealed (op "encrypt"),
	// opened (op "decrypt") or passed as legacy plaintext at a decrypt path (op
	// "legacy_plaintext", only under legacy_plaintext: pass). It is not called when n is 0.
	ObserveFields(policy, op string, n int)
}

// LimitObserver is implemented by an [Observer] that also wants to hear of refusals by the
// server's limits (stream slots, timeouts, memory budget). The server asks once, in NewServer.
type LimitObserver interface {
	// ObserveRefused is called once per refusal; reason is one of the Refused* constants.
	ObserveRefused(reason string)
}

// refused reports a refusal by a limit to the LimitObserver, if any.
func (s *Server) refused(reason string) {
	if s.lim != nil {
		s.lim.ObserveRefused(reason)
	}
}

// Outcomes passed to [Observer.ObserveRequest].
const (
	OutcomeContinue      = "continue"
	OutcomeRefused       = "refused"
	OutcomeProtocolError = "protocol_error"
)

// observe is handle with an Observer: it times the message and reports its outcome.
func (p *processor) observe(ctx context.Context, req *extprocv3.ProcessingRequest) (*extprocv3.ProcessingResponse, error) {
	start := time.Now()
	resp, err := p.dispatch(ctx, req)
	if err != nil {
		resp, err = p.fail(err)
	}
	outcome, status := OutcomeContinue, 0
	switch {
	case err != nil:
		outcome = OutcomeProtocolError
	case resp.GetImmediateResponse() != nil:
		outcome, status = OutcomeRefused, int(resp.GetImmediateResponse().GetStatus().GetCode())
	}
	p.s.obs.ObserveRequest(p.policyName(), messagePhase(req), outcome, status, time.Since(start))
	return resp, err
}

// policyName is the configured policy chosen for this stream, or "". It never echoes the name a
// route asked for, which may not be configured (unbounded label values).
func (p *processor) policyName() string {
	if p.pol == nil {
		return ""
	}
	return p.pol.Name()
}

// observeFields reports sealed and opened values of one body.
func (s *Server) observeFields(pol *policy.Policy, sealed, opened, legacy int) {
	if s.obs == nil {
		return
	}
	if sealed > 0 {
		s.obs.ObserveFields(pol.Name(), "encrypt", sealed)
	}
	if opened > 0 {
		s.obs.ObserveFields(pol.Name(), "decrypt", opened)
	}
	if legacy > 0 {
		s.obs.ObserveFields(pol.Name(), "legacy_plaintext", legacy)
	}
}

// messagePhase names the kind of an ext_proc message.
func messagePhase(req *extprocv3.ProcessingRequest) string {
	switch req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return "request_headers"
	case *extprocv3.ProcessingRequest_RequestBody:
		return "request_body"
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return "request_trailers"
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return "response_headers"
	case *extprocv3.ProcessingRequest_ResponseBody:
		return "response_body"
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		return "response_trailers"
	default:
		return "unknown"
	}
}
