package extproc

import (
	"context"
	"errors"
	"fmt"
	"math"
	"mime"
	"strings"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/rkms/rkms/extproc/decompress"
	"github.com/rkms/rkms/extproc/jsonfield"
	"github.com/rkms/rkms/extproc/policy"
)

// Streaming routes: Envoy sends their bodies FULL_DUPLEX_STREAMED (ExtProcPerRoute
// overrides.processing_mode), one message per chunk as it arrives, and forwards only what rkms
// answers in streamed_response. The route says so with the gRPC initial metadata
// StreamMetadataKey: StreamMetadataValue, trusted (like PolicyMetadataKey) only from an
// authenticated ext_proc peer; rkms cannot tell a streamed body from a buffered one by its
// messages, and the two need different answers.
const (
	StreamMetadataKey   = "x-rkms-body"
	StreamMetadataValue = "stream"
)

// duplexState is one direction of a streamed exchange.
type duplexState struct {
	bs     bodyStream      // nil: the chunks pass unchanged (nothing to transform or inspect)
	t      *transformer    // bs's transformer, nil with bs
	ctx    context.Context // the key context of the chunk being transformed (bs's callback reads it)
	out    []byte          // the output of the last chunk, reused; may hold plaintext
	total  int64           // body bytes received
	held   int64           // budget reserved for what bs holds and out
	ended  bool            // end_of_stream seen: later data is ignored (envoyproxy/envoy#46237)
	began  bool            // a chunk was seen
	ndjson bool            // errors name the line
}

// streamMeta reads the route's body mode from the stream's gRPC metadata; see
// StreamMetadataKey.
func (p *processor) streamMeta(vs []string, authenticated bool) {
	if len(vs) == 0 {
		return
	}
	switch {
	case !authenticated:
		p.namedErr = newError(kindPolicy, phaseRequest, "policy configuration error",
			fmt.Errorf("gRPC metadata %s from an unauthenticated ext_proc peer (neither a verified client certificate nor loopback)", StreamMetadataKey))
	case len(vs) != 1 || vs[0] != StreamMetadataValue:
		p.namedErr = newError(kindPolicy, phaseRequest, "policy configuration error",
			fmt.Errorf("gRPC metadata %s must be %q, once", StreamMetadataKey, StreamMetadataValue))
	default:
		p.duplex = true
	}
}

// openStream prepares direction ph of a streamed exchange whose headers are hm: the policy must
// let the direction stream, the body must be NDJSON or JSON, and the keys it needs are looked up
// now, before the first chunk is forwarded (the key id never comes from a streamed body: policy
// compile refuses it). fs is the direction's fields.
func (p *processor) openStream(ctx context.Context, ph phase, hm headerMap, fs *policy.Fields) error {
	st := &p.dx[ph]
	if !p.pol.Streams(ph == phaseResponse) {
		return newError(kindPolicy, ph, "policy configuration error",
			fmt.Errorf("the route streams %s bodies (%s: %s) but the policy does not set %s.stream", ph, StreamMetadataKey, StreamMetadataValue, ph))
	}
	ndjson, err := hm.streamMedia(fs.Inbound())
	if err != nil {
		msg := "request "
		if ph == phaseResponse {
			msg = "upstream response "
		}
		return newError(kindMediaType, ph, msg+err.Error(), nil)
	}
	if fs.Empty() && !fs.Inbound() {
		return nil // nothing to open, seal or inspect: the chunks pass
	}
	var check func(*jsonfield.Outside) error
	if fs.Inbound() {
		// The guard of a streamed body has no document: streaming policies have no allow list
		// (policy compile), and a refusal's path is not named.
		p.guard.Reset(p.pol, nil)
		if p.check == nil {
			p.check = p.guard.Check
		}
		check = p.check
	}
	t := newTransformer(p.s.keys, ph, p.pol, fs, p.keyID, p.context, nil)
	if ph == phaseResponse {
		p.revealFor(t)
	}
	t.maxFields = math.MaxInt // a stream's work is bounded by max_stream_bytes
	if !fs.Empty() {
		if p.keyID == "" {
			return newError(kindInternal, ph, "internal error", errors.New("streamed body without a key id"))
		}
		if err := p.prefetch(ctx, t, fs); err != nil {
			return err
		}
	}
	st.t, st.ndjson = t, ndjson
	st.bs = newBodyStream(fs.Plan(), ndjson, check, func(f *jsonfield.Field, raw []byte) ([]byte, error) {
		return t.field(st.ctx, f, raw)
	})
	return nil
}

// prefetch looks up, within KeyTimeout, the keys a streamed direction needs before its first
// chunk: the current key when it seals (created on first use unless create: admin_only), and
// the current version when it opens (most ciphertexts use it; a key id without a key is not an
// error here, as a body may hold nothing to open). Other versions are looked up as ciphertexts
// name them, each within KeyTimeout of its chunk.
func (p *processor) prefetch(ctx context.Context, t *transformer, fs *policy.Fields) error {
	kctx := withKeyTimeout(ctx, p.s.opts.KeyTimeout)
	defer kctx.stop()
	kctx.reqID = p.requestID()
	if fs.Encrypts() {
		if err := t.currentKey(kctx); err != nil {
			return classify(t.phase, err)
		}
	}
	if fs.Decrypts() {
		k, err := p.s.keys.Lookup(kctx, p.keyID)
		switch {
		case err == nil:
			t.version = k
		case !errors.Is(err, ErrKeyUnknown):
			return classify(t.phase, fmt.Errorf("get current key: %w", err))
		}
	}
	return nil
}

// duplexResponseHeaders prepares a streamed response body. As for a buffered one, a response
// that is neither NDJSON nor JSON passes unchanged when the policy only opens values (it holds
// nothing to open, and passing it reveals nothing; Envoy's own replies take this way).
func (p *processor) duplexResponseHeaders(ctx context.Context, hm headerMap, resp *policy.Fields) (*extprocv3.ProcessingResponse, error) {
	if _, err := hm.streamMedia(false); err != nil && hm.isIdentity() && !resp.Encrypts() {
		p.respPass = true
		p.debug("streamed response is not JSON: passed unchanged", "status", hm.first(":status"), "content_type", hm.first("content-type"))
		return p.hresp.fill(phaseResponse, nil, nil), nil
	}
	if err := p.openStream(ctx, phaseResponse, hm, resp); err != nil {
		return nil, err
	}
	return p.hresp.fill(phaseResponse, nil, nil), nil
}

// duplexBody answers one chunk of a streamed body with the output that may go on now (none for
// data after end_of_stream). Every chunk is answered, even with nothing, so that Envoy's
// message flow never waits on rkms holding output back.
func (p *processor) duplexBody(ctx context.Context, ph phase, b *extprocv3.HttpBody) (*extprocv3.ProcessingResponse, error) {
	st := &p.dx[ph]
	if st.ended {
		// Envoy has been seen to send the final chunk twice (envoyproxy/envoy#46237): the body
		// is complete; anything after its end is dropped, unanswered.
		p.debug("body data after end_of_stream ignored", "phase", ph.String(), "bytes", len(b.GetBody()))
		return nil, nil
	}
	st.began = true
	chunk, eos := b.GetBody(), b.GetEndOfStream()
	st.total += int64(len(chunk))
	if p.pol != nil && st.total > p.pol.MaxStreamBytes() {
		return nil, p.abort(ph, newError(kindTooLarge, ph, fmt.Sprintf("%s body larger than the policy's max_stream_bytes (%d)", ph, p.pol.MaxStreamBytes()), nil))
	}
	if err := p.holdBody(ph, len(chunk)); err != nil {
		return nil, p.abort(ph, err)
	}
	defer p.bodyDone(ph)
	out := chunk
	if st.bs != nil {
		var err error
		if out, err = p.streamChunk(ctx, ph, st, chunk, eos); err != nil {
			return nil, p.abort(ph, err)
		}
	}
	if eos {
		st.ended = true
		p.closeStream(ctx, ph)
	}
	return streamedResponse(ph, out, eos), nil
}

// streamChunk runs chunk through the direction's transform (and, at the end, closes it),
// charging what it holds to the memory budget.
func (p *processor) streamChunk(ctx context.Context, ph phase, st *duplexState, chunk []byte, eos bool) ([]byte, error) {
	if len(chunk) >= largeBody {
		release, err := p.s.takeLarge(ctx, ph)
		if err != nil {
			return nil, err
		}
		defer release()
	}
	kctx := withKeyTimeout(ctx, p.s.opts.KeyTimeout)
	defer kctx.stop()
	kctx.reqID = p.requestID()
	st.ctx = kctx
	clear(st.out[:cap(st.out)]) // the last chunk's output, sent already; it may hold plaintext
	out, err := st.bs.Write(st.out[:0], chunk)
	if err == nil && eos {
		out, err = st.bs.Close(out)
	}
	clearIfLeft(st.out, out)
	st.out = out[:0]
	if err != nil {
		clear(out[:cap(out)])
		return nil, streamError(ph, err, st)
	}
	if err := p.holdStream(ph, st); err != nil {
		return nil, err
	}
	return out, nil
}

// streamError classifies an error of a streamed transform; an NDJSON body's error names its
// line in the message the client (request) or the log (response) sees.
func streamError(ph phase, err error, st *duplexState) error {
	pe := classify(ph, err)
	if st.ndjson && pe.kind != kindInternal && pe.kind != kindUnavailable {
		pe.msg = fmt.Sprintf("%s (line %d)", pe.msg, st.bs.Line())
	}
	return pe
}

// holdStream sets the budget reserved for direction ph to what its transform holds and its
// output buffer: it grows as a long value is held and shrinks once it is written.
func (p *processor) holdStream(ph phase, st *duplexState) error {
	need := int64(st.bs.Held() + cap(st.out))
	switch {
	case need > st.held:
		if !p.s.budget.reserve(need - st.held) {
			return overBudget(ph)
		}
	case need < st.held:
		p.s.budget.release(st.held - need)
	}
	st.held = need
	return nil
}

// abort marks an error on a chunk of a streamed body. On the response side the response headers
// have gone to the client already: only a reset can stop the body, so the error ends the ext_proc
// stream with a non-OK status (see [processor.fail]). On the request side nothing has gone to
// the client yet and Envoy still sends rkms's immediate response.
func (p *processor) abort(ph phase, err error) error {
	if ph == phaseResponse {
		p.aborting = true
	}
	return err
}

// closeStream ends direction ph: the fields it changed are counted and what it held is given
// back (the output of the last chunk stays until the answer is sent; freeStreams clears it).
func (p *processor) closeStream(ctx context.Context, ph phase) {
	st := &p.dx[ph]
	if st.t != nil {
		p.s.observeFields(p.pol, st.t.sealed, st.t.changed-st.t.sealed, st.t.passed)
		if st.t.reveal != nil {
			p.s.observeReveal(context.WithValue(ctx, requestIDKey{}, p.requestID()), p.pol, p.keyID, st.t.reveal)
		}
		p.debug(ph.String()+" body streamed", "bytes", st.total, "values", st.t.changed)
	}
}

// freeStreams gives back the budget the streamed directions hold and clears their buffers and
// key scratch (plaintext).
func (s *Server) freeStreams(p *processor) {
	for i := range p.dx {
		st := &p.dx[i]
		s.budget.release(st.held)
		clear(st.out[:cap(st.out)])
		if st.t != nil {
			clear(st.t.scratch[:cap(st.t.scratch)])
		}
		p.dx[i] = duplexState{}
	}
}

// duplexTrailers answers trailers of direction ph on a streaming route. Trailers after a body
// that has not ended are refused: its rest would have to be forwarded before them.
func (p *processor) duplexTrailers(ph phase) (*extprocv3.ProcessingResponse, error) {
	if st := &p.dx[ph]; st.began && !st.ended && st.bs != nil {
		return nil, p.abort(ph, newError(kindBadInput, ph, ph.String()+" trailers after a streamed body are not supported", nil))
	}
	return trailersResponse(ph), nil
}

// streamedResponse answers a chunk in FULL_DUPLEX_STREAMED mode: body is what goes on now (it
// may be empty), eos marks the last.
func streamedResponse(ph phase, body []byte, eos bool) *extprocv3.ProcessingResponse {
	br := &extprocv3.BodyResponse{Response: &extprocv3.CommonResponse{BodyMutation: &extprocv3.BodyMutation{
		Mutation: &extprocv3.BodyMutation_StreamedResponse{StreamedResponse: &extprocv3.StreamedBodyResponse{Body: body, EndOfStream: eos}}}}}
	if ph == phaseRequest {
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: br}}
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: br}}
}

// ndjsonTypes are the media types of newline-delimited JSON that streaming routes rewrite one
// line at a time. JSON text sequences (application/json-seq, RFC 7464) are not among them: their
// records start with an RS byte, which is not JSON.
var ndjsonTypes = map[string]bool{
	"application/x-ndjson":    true,
	"application/ndjson":      true,
	"application/jsonl":       true,
	"application/x-jsonlines": true,
}

// streamMedia reports whether a streamed body with these headers is NDJSON (one policy per line)
// or one JSON document, or why it cannot be read: another type, several types, a charset other
// than UTF-8 (when strictCharset), a content encoding.
func (h headerMap) streamMedia(strictCharset bool) (ndjson bool, err error) {
	n := 0
	for v := range h.Values("content-type") {
		n++
		mt, params, perr := mime.ParseMediaType(v)
		if perr != nil {
			return false, errors.New("content-type must be NDJSON (application/x-ndjson, application/jsonl) or JSON")
		}
		switch {
		case ndjsonTypes[mt]:
			ndjson = true
		case mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"):
		default:
			return false, errors.New("content-type must be NDJSON (application/x-ndjson, application/jsonl) or JSON")
		}
		if cs, ok := params["charset"]; ok && strictCharset && !strings.EqualFold(cs, "utf-8") {
			return false, errors.New("charset must be utf-8")
		}
	}
	switch {
	case n == 0:
		return false, errors.New("content-type must be NDJSON (application/x-ndjson, application/jsonl) or JSON")
	case n > 1:
		return false, errors.New("content-type must be given once")
	case !h.isIdentity():
		return false, errors.New("content-encoding is not supported")
	}
	return ndjson, nil
}

// isIdentity reports whether the body has no content-encoding (absent, or identity): streamed
// bodies are not decoded (a compressed body on a streaming route is refused).
func (h headerMap) isIdentity() bool {
	c, err := decompress.Parse(h.Values("content-encoding"))
	return err == nil && c == decompress.Identity
}
