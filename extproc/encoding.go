package extproc

import (
	"errors"
	"fmt"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/rkms/rkms/extproc/decompress"
)

// Compressed bodies (package decompress): a body with a content-encoding is decoded, within
// MaxBodyBytes and MaxCompressionRatio, before it is read; the decoded body is what rkms
// rewrites, and it goes on uncompressed (content-encoding removed, content-length set). Envoy's
// compressor filter, placed before ext_proc in the shipped configurations, compresses the
// response again for a client that accepts it (envoy/README.md, "Compression").

// removeContentEncoding is the header removal of every decoded body's answer (read only).
var removeContentEncoding = []string{"content-encoding"}

// checkCoding reads the content-encoding of the body of phase ph (headers h), records it for
// decode, and refuses what rkms cannot decode, and on requests a coding the policy refuses.
func (p *processor) checkCoding(ph phase, h headerMap) error {
	c, err := decompress.Parse(h.Values("content-encoding"))
	p.coding[ph] = c
	what := "request"
	if ph == phaseResponse {
		what = "upstream response"
	}
	switch {
	case errors.Is(err, decompress.ErrStacked):
		return newError(kindMediaType, ph, what+" content-encoding applies several codings: one of gzip, deflate, br, zstd is supported", err)
	case err != nil:
		return newError(kindMediaType, ph, what+" content-encoding is not supported (gzip, deflate, br, zstd)", err)
	case c != decompress.Identity && ph == phaseRequest && p.pol.RefusesCompressedRequests():
		return newError(kindMediaType, ph, "request content-encoding is refused by the policy: send the body uncompressed", nil)
	}
	return nil
}

// decode returns the body of phase ph decoded, or body itself when it has no coding (or is
// empty). The memory budget is charged first for the most the decoding can hold: the encoded
// body, the largest decoded body it may give and the decoder's state. The decoded body is held
// in p.decoded until its answer is sent (answerBody may send it).
func (p *processor) decode(ph phase, body []byte) ([]byte, error) {
	c := p.coding[ph]
	if c == decompress.Identity || len(body) == 0 {
		return body, nil
	}
	lim := decompress.Limits{MaxSize: int64(p.s.opts.MaxBodyBytes), MaxRatio: int64(p.s.opts.MaxCompressionRatio)}
	bound := lim.Bound(len(body))
	if err := p.holdBody(ph, len(body)+int(bound)+int(c.StateBytes()/BodyCostFactor)); err != nil {
		return nil, err
	}
	p.dropDecoded()
	buf := p.s.bodies.get(int(min(bound, int64(len(body))*4+4096)))
	out, err := decompress.Append((*buf)[:0], c, body, lim)
	clearIfLeft(*buf, out)
	*buf = out
	p.decoded = buf
	if err != nil {
		p.dropDecoded()
		what := "request body"
		if ph == phaseResponse {
			what = "upstream response body"
		}
		switch {
		case errors.Is(err, decompress.ErrTooLarge):
			return nil, newError(kindTooLarge, ph, fmt.Sprintf("%s too large once decompressed (limits: %d bytes, %d times its compressed size)",
				what, lim.MaxSize, lim.MaxRatio), err)
		case errors.Is(err, decompress.ErrUnsupported):
			return nil, newError(kindMediaType, ph, what+" uses an unsupported "+c.String()+" feature", err)
		default:
			return nil, newError(kindBadInput, ph, what+" is not valid "+c.String()+" data", err)
		}
	}
	p.debug("body decompressed", "phase", ph.String(), "coding", c.String(), "encoded", len(body), "decoded", len(out))
	return out, nil
}

// answerBody is the answer to the body of phase ph: out when the transform changed it (nil
// otherwise). A decoded body always goes on decoded, with content-encoding removed and
// content-length set, whether or not a value changed.
func (p *processor) answerBody(ph phase, out []byte) *extprocv3.ProcessingResponse {
	if p.coding[ph] == decompress.Identity || p.decoded == nil {
		return p.bresp.fill(ph, out)
	}
	if out == nil {
		out = *p.decoded
	}
	r := p.bresp.fill(ph, out)
	p.bresp.hm.RemoveHeaders = removeContentEncoding
	return r
}

// dropDecoded gives the decoded body's buffer back to the pool (which clears it): its answer
// has been sent, or the stream ends.
func (p *processor) dropDecoded() {
	if p.decoded != nil {
		p.s.bodies.put(p.decoded)
		p.decoded = nil
	}
}
