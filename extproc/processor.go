package extproc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/rkms/rkms/extproc/decompress"
	"github.com/rkms/rkms/extproc/jsonfield"
	"github.com/rkms/rkms/extproc/policy"
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
	localReply                       bool // a response to a request Envoy refused before ext_proc saw it
	finished                         bool // an immediate response was sent
	endAfter                         bool // end the stream once the answer is sent (a limit refused it)
	duplex                           bool // the route streams bodies (StreamMetadataKey): see duplex.go
	pipelined                        bool // Envoy sends the request body without waiting (pipelined.go)
	held                             bool // the request headers answer waits for the body (pipelined.go)
	heldMut                          *extprocv3.HeaderMutation
	// before is an answer to send before the one handle returns (the held headers answer).
	before   *extprocv3.ProcessingResponse
	aborting bool // a streamed body failed where only a reset can stop it
	dx       [2]duplexState

	// Limits (limits.go): the shares this stream holds and its body reservations. Each is given
	// back exactly once: by freeProcessor, or (spent) by sent once the answer is sent.
	admitted   bool     // the first message was seen and the client counted
	clientHeld bool     // client is counted in s.clients
	client     string   // the client's address
	tenantHeld bool     // keyID is counted in s.tenants
	reserved   [2]int64 // bytes reserved for the body still to come, per phase
	spent      int64    // reservation of the body just answered, released once its answer is sent
	queued     int64    // the part of it an answer sent but maybe not read yet holds (see sent)

	pol       *policy.Policy
	headers   headerMap // request headers
	path      string    // canonical request path (policy.Canonical)
	reqID     string    // request id for logs, set when first needed
	needKeyID bool      // the request's fields are sealed or opened: key id (and context) needed
	keyID     string
	context   string // record binding (policy context), "" when the policy binds none
	src       policy.Source
	jwt       *structpb.Struct // verified JWT payload forwarded by Envoy, nil if none
	peerURI   string           // verified client certificate SANs (request_attributes)
	peerDNS   string

	// Storage reused from stream to stream (processors are pooled, see newProcessor): the
	// answers built for each message, the response headers, and the transforms' scratch.
	hresp    headersResp
	bresp    bodyResp
	guard    policy.Guard                   // tripwires of the body being read
	check    func(*jsonfield.Outside) error // guard.Check, bound once per pooled processor
	respHdrs headerMap
	scratch  []byte

	reveal  revealState          // the response's reveal decisions (revealfields.go), reused
	coding  [2]decompress.Coding // content-encoding of each phase's body (encoding.go)
	decoded *[]byte              // the decoded body until its answer is sent
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
		if !authenticatedPeer(ctx) {
			// A route's policy choice is trusted only from Envoy: a direct client must not pick a
			// policy (or skip one) by sending the metadata itself.
			p.namedErr = newError(kindPolicy, phaseRequest, "policy configuration error",
				fmt.Errorf("gRPC metadata %s from an unauthenticated ext_proc peer (neither a verified client certificate nor loopback)", PolicyMetadataKey))
		}
		for _, v := range vs[1:] {
			if v != vs[0] {
				p.namedErr = newError(kindPolicy, phaseRequest, "policy configuration error",
					fmt.Errorf("gRPC metadata %s names several policies", PolicyMetadataKey))
			}
		}
	}
	p.streamMeta(metadata.ValueFromIncomingContext(ctx, StreamMetadataKey), authenticatedPeer(ctx))
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
	if !p.admitted {
		if err := p.admit(ctx, req); err != nil {
			return nil, err
		}
	}
	if p.finished {
		if p.duplex || p.pipelined {
			// Chunks Envoy sent before it read the immediate response: dropped, unanswered.
			return nil, nil
		}
		return nil, protocolError("message after an immediate response")
	}
	if req.GetObservabilityMode() {
		return nil, protocolError("observability mode cannot enforce encryption")
	}
	switch m := req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return p.requestHeaders(ctx, req, m.RequestHeaders)
	case *extprocv3.ProcessingRequest_RequestBody:
		return p.requestBody(ctx, m.RequestBody)
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return p.trailers(phaseRequest)
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		if !p.reqHeaders && !p.respHeaders && responseOnlyRoute(req) {
			return p.responseOnly(ctx, req, m.ResponseHeaders)
		}
		return p.responseHeaders(ctx, m.ResponseHeaders)
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
	if pe.reason != "" {
		p.s.refused(pe.reason)
	}
	if p.aborting {
		// A streamed response body failed after its headers went to the client: a non-OK
		// status makes Envoy reset the stream (an OK end would let the rest pass unprocessed).
		p.logger().Error("streamed body refused: stream reset", pe.logAttrs(httpStatus(pe))...)
		return nil, status.Error(grpcCode(pe), pe.msg)
	}
	if pe.kind == kindProtocol {
		p.logger().Error("ext_proc stream refused", "error", pe.err)
		return nil, status.Error(codes.FailedPrecondition, pe.Error())
	}
	code := httpStatus(pe)
	lvl := slog.LevelWarn
	if code >= http.StatusInternalServerError {
		lvl = slog.LevelError
	}
	p.logger().Log(context.Background(), lvl, "request refused", pe.logAttrs(code)...)
	p.finished = true
	p.endAfter = pe.reason != ""
	return errorResponse(pe), nil
}

func (p *processor) requestHeaders(ctx context.Context, req *extprocv3.ProcessingRequest, h *extprocv3.HttpHeaders) (*extprocv3.ProcessingResponse, error) {
	if p.reqHeaders {
		return nil, protocolError("request headers received twice")
	}
	p.reqHeaders = true
	p.pipelined = !p.duplex && pipelinedConfig(req)
	p.identities(req)
	p.headers = parseHeaders(h.GetHeaders())
	p.reqEnded = h.GetEndOfStream()
	p.log = nil // with the request id from now on
	if p.namedErr != nil {
		return nil, p.namedErr
	}
	hasBody := !p.reqEnded
	pol, canon, err := p.s.policies.Select(p.named, policy.Request{
		Method: p.headers.first(":method"), Path: p.headers.first(":path"), HasBody: hasBody})
	p.path = canon
	if err != nil {
		return nil, err
	}
	if pol == nil {
		mode := p.s.modes.passThrough
		if p.duplex {
			mode = nil // the chunks still come: they pass (duplexBody)
		}
		r := p.hresp.fill(phaseRequest, nil, mode)
		r.DynamicMetadata = p.s.stamps.none
		return r, nil
	}
	p.pol = pol
	p.log = nil // with the policy from now on
	if err := policy.CheckHeaders(&p.headers); err != nil {
		return nil, err
	}
	reqFields := pol.Request()
	p.needKeyID = !pol.Response().Empty() || (hasBody && !reqFields.Empty())
	if hasBody && !p.duplex {
		// Every body on a policy route is read: it is encrypted, or inspected for tripwires, or
		// (egress) decrypted. So it must be JSON that rkms reads the way the application will.
		if err := p.headers.checkJSON(reqFields.Inbound()); err != nil {
			return nil, newError(kindMediaType, phaseRequest, "request "+err.Error(), nil)
		}
		if err := p.checkCoding(phaseRequest, p.headers); err != nil {
			return nil, err
		}
	}
	if p.needKeyID {
		if err := p.evalIDs(nil, hasBody); err != nil {
			return nil, err
		}
	}
	if hasBody && p.duplex {
		if err := p.openStream(ctx, phaseRequest, p.headers, reqFields); err != nil {
			return nil, err
		}
	}
	var mut *extprocv3.HeaderMutation
	if !pol.Response().Empty() {
		mut = p.s.modes.dropAcceptEncoding
	}
	if len(pol.IndexQueries()) > 0 {
		var err error
		if mut, err = p.indexQuery(ctx, mut); err != nil {
			return nil, err
		}
	}
	if hasBody && !p.duplex {
		if err := p.reserve(phaseRequest, p.headers.first("content-length")); err != nil {
			return nil, err
		}
	}
	if hasBody && p.pipelined {
		p.holdHeaders(mut)
		return nil, nil // answered with the body (pipelined.go)
	}
	mode := p.s.modes.policy[b2i(hasBody)][b2i(!pol.Response().Empty())]
	if p.duplex {
		mode = nil // Envoy 1.40 applies a mode_override even on a full-duplex route (TestStreamImportExport)
	}
	r := p.hresp.fill(phaseRequest, mut, mode)
	if !hasBody || p.duplex {
		// A streamed body goes on only through rkms's answers: the request is processed from here.
		r.DynamicMetadata = p.s.stamps.of(pol) // the last request message rkms answers
	}
	return r, nil
}

func (p *processor) requestBody(ctx context.Context, b *extprocv3.HttpBody) (*extprocv3.ProcessingResponse, error) {
	switch {
	case !p.reqHeaders:
		return nil, protocolError("request body before request headers")
	case p.reqEnded:
		return nil, protocolError("request body after end of stream")
	case p.duplex:
		return p.duplexBody(ctx, phaseRequest, b)
	case p.reqBody:
		return nil, protocolError("second request body message (only the BUFFERED body mode is supported)")
	case p.held && !b.GetEndOfStream():
		return nil, newError(kindBadInput, phaseRequest, "request body must come in one message",
			fmt.Errorf("pipelined request body without end_of_stream (trailers, or no buffer filter before ext_proc)"))
	}
	p.reqBody = true
	defer p.bodyDone(phaseRequest)
	body := b.GetBody()
	if p.pol == nil {
		// Envoy was asked to send no body (mode_override); one without allow_mode_override
		// sends it anyway: it passes, within the budget.
		if err := p.holdBody(phaseRequest, len(body)); err != nil {
			return nil, err
		}
		return p.bresp.fill(phaseRequest, nil), nil
	}
	if len(body) > p.s.opts.MaxBodyBytes {
		return nil, newError(kindTooLarge, phaseRequest, "request body too large", nil)
	}
	if err := p.holdBody(phaseRequest, len(body)); err != nil {
		return nil, err
	}
	body, err := p.decode(phaseRequest, body)
	if err != nil {
		return nil, err
	}
	if p.needKeyID {
		if err := p.evalIDs(body, true); err != nil {
			return nil, err
		}
	}
	out, n, err := p.body(ctx, phaseRequest, p.pol.Request(), body)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return p.lastRequestAnswer(p.answerBody(phaseRequest, nil)), nil
	}
	if len(out) > p.s.opts.MaxBodyBytes {
		// Envoy holds the replaced body in the same buffer: over its limit it would answer a
		// bare 413 itself. Say why instead.
		return nil, newError(kindTooLarge, phaseRequest, "request body too large once encrypted", nil)
	}
	return p.lastRequestAnswer(p.answerBody(phaseRequest, out)), nil
}

// evalIDs computes the key id and the record binding context that are not computed yet, from
// the request headers, the verified identities and, once it is known, the request body (nil
// at request headers; hasBody says whether one will follow). A template that reads the body
// of a request without one is refused.
func (p *processor) evalIDs(body []byte, hasBody bool) error {
	p.src = policy.Source{Headers: &p.headers, Path: p.path, Body: body, PeerURISAN: p.peerURI, PeerDNSSAN: p.peerDNS}
	if p.jwt != nil {
		p.src.JWT = jwtClaims{p.jwt}
	}
	for _, t := range []struct {
		tmpl *policy.KeyID
		dst  *string
	}{{p.pol.KeyID(), &p.keyID}, {p.pol.Context(), &p.context}} {
		if t.tmpl == nil || *t.dst != "" || (t.tmpl.NeedsBody() && body == nil && hasBody) {
			continue
		}
		if t.tmpl.NeedsBody() && body == nil {
			return newError(kindBadInput, phaseRequest, "key id or context source: the request has no body", nil)
		}
		v, err := t.tmpl.Eval(&p.src)
		if err != nil {
			return err
		}
		*t.dst = v
		if t.dst == &p.keyID {
			if err := p.claimTenant(); err != nil {
				return err
			}
		}
	}
	return nil
}

// lastRequestAnswer stamps r, the answer to the request body, or (pipelined) releases the held
// headers answer, stamped, before it.
func (p *processor) lastRequestAnswer(r *extprocv3.ProcessingResponse) *extprocv3.ProcessingResponse {
	if p.held {
		return p.releaseHeaders(r)
	}
	return p.stamped(r)
}

// stamped adds the stamp that tells Envoy's filters after ext_proc that rkms processed the
// request (see [StampNamespace]) to the answer to the last request message.
func (p *processor) stamped(r *extprocv3.ProcessingResponse) *extprocv3.ProcessingResponse {
	r.DynamicMetadata = p.s.stamps.of(p.pol)
	return r
}

// body transforms one body of the stream's policy in direction fs, inspecting it for
// tripwires when it goes to the application. It returns the new body and how many values
// changed; when that is 0 the body is unchanged and out is nil.
func (p *processor) body(ctx context.Context, ph phase, fs *policy.Fields, body []byte) ([]byte, int, error) {
	if len(body) == 0 {
		return nil, 0, nil
	}
	var check func(*jsonfield.Outside) error
	if fs.Inbound() {
		p.guard.Reset(p.pol, body)
		if p.check == nil {
			p.check = p.guard.Check
		}
		check = p.check
	}
	if fs.Empty() {
		if check == nil {
			return nil, 0, nil
		}
		if _, err := fs.Plan().Inspect(body, check); err != nil {
			return nil, 0, classify(ph, err)
		}
		return nil, 0, nil
	}
	if len(body) >= largeBody {
		release, err := p.s.takeLarge(ctx, ph)
		if err != nil {
			return nil, 0, err
		}
		defer release()
	}
	out, buf, n, err := p.transform(ctx, ph, fs, check, body)
	if err != nil {
		return nil, 0, err
	}
	p.lend(buf)
	if ph == phaseRequest {
		p.debug("request body transformed", "values", n)
	} else {
		p.debug("response body transformed", "values", n)
	}
	return out, n, nil
}

func (p *processor) responseHeaders(ctx context.Context, h *extprocv3.HttpHeaders) (*extprocv3.ProcessingResponse, error) {
	switch {
	case p.respHeaders:
		return nil, protocolError("response headers received twice")
	case !p.reqHeaders:
		// Envoy refused the request before ext_proc saw it (a malformed path, an upgrade it does
		// not route) and runs its own reply through the response path. Nothing reached the
		// application and the reply holds nothing to open: pass it. Clients can cause this at
		// will, so it is logged at debug level only.
		p.respHeaders, p.localReply = true, true
		p.respEnded = h.GetEndOfStream()
		p.debug("Envoy's own reply to a request ext_proc never saw: passed unchanged")
		return p.hresp.fill(phaseResponse, nil, p.s.modes.passThrough), nil
	}
	p.respHeaders = true
	p.respEnded = h.GetEndOfStream()
	if p.pol == nil || p.pol.Response().Empty() || p.respEnded {
		return p.hresp.fill(phaseResponse, nil, nil), nil
	}
	p.respHdrs = parseHeadersInto(p.respHdrs, h.GetHeaders())
	hm := p.respHdrs
	resp := p.pol.Response()
	if p.duplex {
		return p.duplexResponseHeaders(ctx, hm, resp)
	}
	if !hm.isJSON() && !resp.Encrypts() {
		// Decrypting only: a body that is not JSON holds no field to open, and passing it
		// reveals nothing. This also lets Envoy's own local replies (text/plain 413, 503, ...),
		// which run through the response path of ext_proc, reach the client.
		p.respPass = true
		p.debug("response is not JSON: passed unchanged", "status", hm.first(":status"), "content_type", hm.first("content-type"))
		return p.hresp.fill(phaseResponse, nil, nil), nil
	}
	if err := hm.checkJSON(resp.Inbound()); err != nil {
		return nil, newError(kindMediaType, phaseResponse, "upstream response "+err.Error(), nil)
	}
	if err := p.checkCoding(phaseResponse, hm); err != nil {
		return nil, err
	}
	if err := p.reserve(phaseResponse, hm.first("content-length")); err != nil {
		return nil, err
	}
	return p.hresp.fill(phaseResponse, nil, nil), nil
}

func (p *processor) responseBody(ctx context.Context, b *extprocv3.HttpBody) (*extprocv3.ProcessingResponse, error) {
	switch {
	case p.localReply && !p.respEnded && !p.respBody && !p.duplex:
		p.respBody = true
		defer p.bodyDone(phaseResponse)
		if err := p.holdBody(phaseResponse, len(b.GetBody())); err != nil {
			return nil, err
		}
		return p.bresp.fill(phaseResponse, nil), nil
	case !p.reqHeaders:
		return nil, protocolError("response body before request headers")
	case p.respEnded:
		return nil, protocolError("response body after end of stream")
	case p.duplex:
		return p.duplexBody(ctx, phaseResponse, b)
	case p.respBody:
		return nil, protocolError("second response body message (only the BUFFERED body mode is supported)")
	}
	p.respBody = true
	defer p.bodyDone(phaseResponse)
	body := b.GetBody()
	if p.pol == nil || p.pol.Response().Empty() || p.respPass {
		if err := p.holdBody(phaseResponse, len(body)); err != nil {
			return nil, err
		}
		return p.bresp.fill(phaseResponse, nil), nil
	}
	if !p.respHeaders {
		return nil, protocolError("response body before response headers (response_header_mode must be SEND)")
	}
	if len(body) > p.s.opts.MaxBodyBytes {
		return nil, newError(kindTooLarge, phaseResponse, "upstream response body too large", nil)
	}
	if err := p.holdBody(phaseResponse, len(body)); err != nil {
		return nil, err
	}
	body, err := p.decode(phaseResponse, body)
	if err != nil {
		return nil, err
	}
	if len(body) == 0 {
		return p.answerBody(phaseResponse, nil), nil
	}
	if p.keyID == "" {
		return nil, newError(kindInternal, phaseResponse, "internal error",
			fmt.Errorf("response body before the request body that names the key id"))
	}
	out, n, err := p.body(ctx, phaseResponse, p.pol.Response(), body)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return p.answerBody(phaseResponse, nil), nil
	}
	if len(out) > p.s.opts.MaxBodyBytes {
		return nil, newError(kindTooLarge, phaseResponse, "upstream response body too large once transformed", nil)
	}
	return p.answerBody(phaseResponse, out), nil
}

func (p *processor) trailers(ph phase) (*extprocv3.ProcessingResponse, error) {
	if !p.reqHeaders && !p.localReply {
		return nil, protocolError("%s trailers before request headers", ph)
	}
	if p.duplex {
		return p.duplexTrailers(ph)
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
			if cid := p.headers.first("x-request-id"); cid != "" && !p.s.opts.TrustRequestID {
				l = l.With("client_request_id", truncate(cid, 128))
			}
		}
		if p.pol != nil {
			l = l.With("policy", p.pol.Name())
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
	s.freeStreams(p)
	s.freeLimits(p)
	p.release()
	p.dropDecoded()
	respHdrs, scratch, check, rev := p.respHdrs, p.scratch, p.check, p.reveal
	rev.rs, rev.token = nil, nil
	clear(respHdrs[:cap(respHdrs)])
	clear(scratch[:cap(scratch)])
	p.guard.Reset(nil, nil)
	guard := p.guard
	*p = processor{respHdrs: respHdrs[:0], scratch: scratch[:0], guard: guard, check: check, reveal: rev}
	s.procs.Put(p)
}

// lend records that buf backs the body of the response about to be sent.
func (p *processor) lend(buf *[]byte) {
	p.release()
	p.lent = buf
}

// release gives the lent body buffer back to the pool. The stream calls it (through sent) once
// the response that holds the body has been sent: gRPC encodes a message within Send and keeps
// no reference to it (the server installs no stats handler that would).
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
		p.reqID = requestID(p.headers, p.s.opts.TrustRequestID)
	}
	return p.reqID
}

// requestID returns Envoy's x-request-id when trusted (Options.TrustRequestID: Envoy
// generates it for every request), else a fresh random id.
func requestID(h headerMap, trusted bool) string {
	if id := h.first("x-request-id"); trusted && id != "" && len(id) <= 128 {
		return id
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// authenticatedPeer reports whether the ext_proc client is Envoy as far as rkms can tell: it
// presented a client certificate that the TLS handshake verified, or it connects over loopback
// (or a local, non-TCP transport).
func authenticatedPeer(ctx context.Context) bool {
	pr, ok := peer.FromContext(ctx)
	if !ok {
		return false
	}
	if ti, ok := pr.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 {
		return true
	}
	if ta, ok := pr.Addr.(*net.TCPAddr); ok {
		return ta.IP.IsLoopback()
	}
	return pr.Addr != nil && pr.Addr.Network() != "tcp" && pr.Addr.Network() != "udp"
}

// truncate cuts s to at most n bytes (a client's value in a log line).
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
