package extproc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// processor holds the state of one stream (one HTTP request). One method per message kind;
// each returns exactly one response or an error for the edge ([processor.fail]) to map.
type processor struct {
	s        *Server
	log      *slog.Logger // built on first use by logger(): most streams never log
	lent     *[]byte      // body buffer lent to the response being sent; see release
	named    string       // policy named by the route (gRPC metadata)
	namedErr error

	reqHeaders, reqEnded, reqBody    bool // request headers seen, no body follows, body seen
	respHeaders, respEnded, respBody bool
	respPass                         bool // the response is passed unchanged (not JSON, decrypt only)
	finished                         bool // an immediate response was sent

	pol       *policy
	headers   headerMap // request headers
	path      string    // request path without the query
	reqID     string    // request id for logs, set when first needed
	needKeyID bool
	keyID     string

	// Storage reused from stream to stream (processors are pooled, see newProcessor): the
	// answers built for each message, the response headers, and the transforms' scratch.
	hresp    headersResp
	bresp    bodyResp
	respHdrs headerMap
	scratch  []byte
}

// newProcessor returns a processor for one stream, from the server's pool; give it back with
// freeProcessor when the stream has ended. Pooling saves the processor and the answers it builds
// (six allocations per stream); it is safe because an answer is encoded within Send and nothing
// keeps it afterwards (see release).
func (s *Server) newProcessor(ctx context.Context) *processor {
	p, _ := s.procs.Get().(*processor)
	if p == nil {
		p = &processor{}
	}
	p.s = s
	// ValueFromIncomingContext copies one key's values, FromIncomingContext the whole metadata.
	if vs := metadata.ValueFromIncomingContext(ctx, PolicyMetadataKey); len(vs) > 0 {
		p.named = vs[0]
		for _, v := range vs[1:] {
			if v != vs[0] {
				p.namedErr = newError(kindPolicy, phaseRequest, "policy configuration error",
					fmt.Errorf("gRPC metadata %s names several policies", PolicyMetadataKey))
			}
		}
	}
	return p
}

// handle answers one message from Envoy.
func (p *processor) handle(ctx context.Context, req *extprocv3.ProcessingRequest) (*extprocv3.ProcessingResponse, error) {
	if p.s.obs != nil {
		return p.observe(ctx, req)
	}
	resp, err := p.dispatch(ctx, req)
	if err != nil {
		return p.fail(err)
	}
	return resp, nil
}

func (p *processor) dispatch(ctx context.Context, req *extprocv3.ProcessingRequest) (*extprocv3.ProcessingResponse, error) {
	if p.finished {
		return nil, protocolError("message after an immediate response")
	}
	if req.GetObservabilityMode() {
		return nil, protocolError("observability mode cannot enforce encryption")
	}
	switch m := req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return p.requestHeaders(m.RequestHeaders)
	case *extprocv3.ProcessingRequest_RequestBody:
		return p.requestBody(ctx, m.RequestBody)
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return p.trailers(phaseRequest)
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return p.responseHeaders(m.ResponseHeaders)
	case *extprocv3.ProcessingRequest_ResponseBody:
		return p.responseBody(ctx, m.ResponseBody)
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		return p.trailers(phaseResponse)
	default:
		return nil, protocolError("message with no headers, body or trailers")
	}
}

// fail is the edge: it turns an error into an ImmediateResponse with a JSON body, or, for a
// broken protocol, into a non-OK gRPC status (Envoy then fails the request closed).
func (p *processor) fail(err error) (*extprocv3.ProcessingResponse, error) {
	pe := classify(phaseRequest, err)
	if pe.kind == kindProtocol {
		p.logger().Error("ext_proc stream refused", "error", pe.err)
		return nil, status.Error(codes.FailedPrecondition, pe.Error())
	}
	code := httpStatus(pe)
	lvl := slog.LevelWarn
	if code >= http.StatusInternalServerError {
		lvl = slog.LevelError
	}
	p.logger().Log(context.Background(), lvl, "request refused", "phase", pe.phase.String(), "status", code, "reason", pe.msg, "error", pe.err)
	p.finished = true
	return immediateResponse(code, pe.kind.details(), pe.msg), nil
}

func (p *processor) requestHeaders(h *extprocv3.HttpHeaders) (*extprocv3.ProcessingResponse, error) {
	if p.reqHeaders {
		return nil, protocolError("request headers received twice")
	}
	p.reqHeaders = true
	p.headers = parseHeaders(h.GetHeaders())
	p.reqEnded = h.GetEndOfStream()
	p.log = nil // with the request id from now on
	method := p.headers.first(":method")
	p.path, _, _ = strings.Cut(p.headers.first(":path"), "?")
	if p.namedErr != nil {
		return nil, p.namedErr
	}
	pol, err := p.s.selectPolicy(p.named, method, p.path)
	if err != nil {
		return nil, err
	}
	if pol == nil {
		return p.hresp.fill(phaseRequest, nil, p.s.modes.passThrough), nil
	}
	p.pol = pol
	p.log = nil // with the policy from now on
	hasBody := !p.reqEnded
	p.needKeyID = !pol.response.empty() || (hasBody && !pol.request.empty())
	if hasBody && !pol.request.empty() {
		if !p.headers.isJSON() {
			return nil, newError(kindMediaType, phaseRequest, "request content-type must be application/json", nil)
		}
		if !p.headers.isIdentity() {
			return nil, newError(kindMediaType, phaseRequest, "request content-encoding is not supported", nil)
		}
	}
	if p.needKeyID {
		switch {
		case !pol.keyID.needsBody:
			if p.keyID, err = pol.keyID.eval(&idSource{headers: p.headers, path: p.path}); err != nil {
				return nil, err
			}
		case !hasBody:
			return nil, newError(kindBadInput, phaseRequest, "key id source: the request has no body", nil)
		}
	}
	var mut *extprocv3.HeaderMutation
	if !pol.response.empty() {
		mut = p.s.modes.dropAcceptEncoding
	}
	needBody := hasBody && (!pol.request.empty() || (p.needKeyID && pol.keyID.needsBody))
	return p.hresp.fill(phaseRequest, mut, p.s.modes.policy[b2i(needBody)][b2i(!pol.response.empty())]), nil
}

func (p *processor) requestBody(ctx context.Context, b *extprocv3.HttpBody) (*extprocv3.ProcessingResponse, error) {
	switch {
	case !p.reqHeaders:
		return nil, protocolError("request body before request headers")
	case p.reqEnded:
		return nil, protocolError("request body after end of stream")
	case p.reqBody:
		return nil, protocolError("second request body message (only the BUFFERED body mode is supported)")
	}
	p.reqBody = true
	if p.pol == nil {
		return p.bresp.fill(phaseRequest, nil), nil
	}
	body := b.GetBody()
	if len(body) > p.s.opts.MaxBodyBytes {
		return nil, newError(kindTooLarge, phaseRequest, "request body too large", nil)
	}
	if p.needKeyID && p.keyID == "" {
		id, err := p.pol.keyID.eval(&idSource{headers: p.headers, path: p.path, body: body})
		if err != nil {
			return nil, err
		}
		p.keyID = id
	}
	if p.pol.request.empty() || len(body) == 0 {
		return p.bresp.fill(phaseRequest, nil), nil
	}
	out, buf, n, err := p.s.transform(ctx, phaseRequest, p.pol, &p.pol.request, p.keyID, p.requestID(), body, &p.scratch)
	if err != nil {
		return nil, err
	}
	p.lend(buf)
	p.debug("request body transformed", "values", n)
	if n == 0 {
		return p.bresp.fill(phaseRequest, nil), nil
	}
	if len(out) > p.s.opts.MaxBodyBytes {
		// Envoy holds the replaced body in the same buffer: over its limit it would answer a
		// bare 413 itself. Say why instead.
		return nil, newError(kindTooLarge, phaseRequest, "request body too large once encrypted", nil)
	}
	return p.bresp.fill(phaseRequest, out), nil
}

func (p *processor) responseHeaders(h *extprocv3.HttpHeaders) (*extprocv3.ProcessingResponse, error) {
	switch {
	case !p.reqHeaders:
		return nil, protocolError("response headers before request headers")
	case p.respHeaders:
		return nil, protocolError("response headers received twice")
	}
	p.respHeaders = true
	p.respEnded = h.GetEndOfStream()
	if p.pol == nil || p.pol.response.empty() || p.respEnded {
		return p.hresp.fill(phaseResponse, nil, nil), nil
	}
	p.respHdrs = parseHeadersInto(p.respHdrs, h.GetHeaders())
	hm := p.respHdrs
	if !hm.isJSON() {
		if p.pol.response.encrypts {
			return nil, newError(kindMediaType, phaseResponse, "upstream response is not JSON", nil)
		}
		// Decrypting only: a body that is not JSON holds no field to open, and passing it
		// reveals nothing. This also lets Envoy's own local replies (text/plain 413, 503, ...),
		// which run through the response path of ext_proc, reach the client.
		p.respPass = true
		p.debug("response is not JSON: passed unchanged", "status", hm.first(":status"), "content_type", hm.first("content-type"))
		return p.hresp.fill(phaseResponse, nil, nil), nil
	}
	if !hm.isIdentity() {
		return nil, newError(kindMediaType, phaseResponse, "upstream response is compressed", nil)
	}
	return p.hresp.fill(phaseResponse, nil, nil), nil
}

func (p *processor) responseBody(ctx context.Context, b *extprocv3.HttpBody) (*extprocv3.ProcessingResponse, error) {
	switch {
	case !p.reqHeaders:
		return nil, protocolError("response body before request headers")
	case p.respEnded:
		return nil, protocolError("response body after end of stream")
	case p.respBody:
		return nil, protocolError("second response body message (only the BUFFERED body mode is supported)")
	}
	p.respBody = true
	if p.pol == nil || p.pol.response.empty() || p.respPass {
		return p.bresp.fill(phaseResponse, nil), nil
	}
	if !p.respHeaders {
		return nil, protocolError("response body before response headers (response_header_mode must be SEND)")
	}
	body := b.GetBody()
	if len(body) > p.s.opts.MaxBodyBytes {
		return nil, newError(kindTooLarge, phaseResponse, "upstream response body too large", nil)
	}
	if len(body) == 0 {
		return p.bresp.fill(phaseResponse, nil), nil
	}
	if p.keyID == "" {
		return nil, newError(kindInternal, phaseResponse, "internal error",
			fmt.Errorf("response body before the request body that names the key id"))
	}
	out, buf, n, err := p.s.transform(ctx, phaseResponse, p.pol, &p.pol.response, p.keyID, p.requestID(), body, &p.scratch)
	if err != nil {
		return nil, err
	}
	p.lend(buf)
	p.debug("response body transformed", "values", n)
	if n == 0 {
		return p.bresp.fill(phaseResponse, nil), nil
	}
	if len(out) > p.s.opts.MaxBodyBytes {
		return nil, newError(kindTooLarge, phaseResponse, "upstream response body too large once transformed", nil)
	}
	return p.bresp.fill(phaseResponse, out), nil
}

func (p *processor) trailers(ph phase) (*extprocv3.ProcessingResponse, error) {
	if !p.reqHeaders {
		return nil, protocolError("%s trailers before request headers", ph)
	}
	return trailersResponse(ph), nil
}

// logger returns the stream's logger: the server's, with the request id once the request headers
// are known and the policy once chosen. Building it costs allocations, so it is made only when
// something is logged.
func (p *processor) logger() *slog.Logger {
	if p.log == nil {
		l := p.s.log
		if p.reqHeaders {
			l = l.With("request_id", p.requestID())
		}
		if p.pol != nil {
			l = l.With("policy", p.pol.name)
		}
		p.log = l
	}
	return p.log
}

// debug logs at debug level when that level is enabled.
func (p *processor) debug(msg string, args ...any) {
	if p.s.log.Enabled(context.Background(), slog.LevelDebug) {
		p.logger().Debug(msg, args...)
	}
}

// freeProcessor clears p (it may hold header values and, in its scratch buffer, plaintext) and
// puts it back in the pool.
func (s *Server) freeProcessor(p *processor) {
	p.release()
	respHdrs, scratch := p.respHdrs, p.scratch
	clear(respHdrs[:cap(respHdrs)])
	clear(scratch[:cap(scratch)])
	*p = processor{respHdrs: respHdrs[:0], scratch: scratch[:0]}
	s.procs.Put(p)
}

// lend records that buf backs the body of the response about to be sent.
func (p *processor) lend(buf *[]byte) {
	p.release()
	p.lent = buf
}

// release gives the lent body buffer back to the pool. Process calls it once the response that
// holds the body has been sent: gRPC encodes a message within Send and keeps no reference to it
// (the server installs no stats handler that would).
func (p *processor) release() {
	if p.lent != nil {
		p.s.bodies.put(p.lent)
		p.lent = nil
	}
}

// requestID returns the stream's request id, computed once: a generated id stays the same for
// the stream.
func (p *processor) requestID() string {
	if p.reqID == "" {
		p.reqID = requestID(p.headers)
	}
	return p.reqID
}

// requestID returns x-request-id (Envoy sets one by default) or a fresh random id.
func requestID(h headerMap) string {
	if id := h.first("x-request-id"); id != "" && len(id) <= 128 {
		return id
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
