package extproc

import (
	"context"
	"errors"
	"io"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Process serves one ext_proc stream (one HTTP request): exactly one answer per message, in
// order. Envoy ends a stream by half-close or reset, so io.EOF and Canceled are normal ends.
// Failures that cannot become an HTTP reply end the stream with a non-OK status, never OK,
// because Envoy continues a request unprocessed when the stream ends with OK mid-request.
//
// A stream's life, the wait for its first message and the wait for each next message are
// bounded (Options.StreamTimeout, FirstMessageTimeout, IdleTimeout): past one, the stream ends
// with DEADLINE_EXCEEDED. Recv and Send block until the peer acts, and only the handler's
// return cancels them, so they run on a second goroutine (see [wire]) while this one waits with
// a timer.
func (s *Server) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	if n := s.streams.Add(1); n > int64(s.opts.MaxConcurrentStreams) {
		s.streams.Add(-1)
		s.refused(RefusedStreamLimit)
		s.log.Warn("ext_proc stream refused: too many concurrent streams", "limit", s.opts.MaxConcurrentStreams)
		return status.Errorf(codes.ResourceExhausted, "too many concurrent ext_proc streams (limit %d)", s.opts.MaxConcurrentStreams)
	}
	defer s.streams.Add(-1)
	ctx, cancel := context.WithTimeout(stream.Context(), s.opts.StreamTimeout)
	defer cancel()
	end, _ := ctx.Deadline()
	p := s.newProcessor(ctx)
	w := newWire(s, stream)
	defer func() {
		w.close()
		s.freeProcessor(p, w.sending)
	}()
	timer := time.NewTimer(s.opts.FirstMessageTimeout)
	defer timer.Stop()
	wait, reason := s.opts.FirstMessageTimeout, RefusedFirstMessageTimeout
	var resp *extprocv3.ProcessingResponse
	for {
		if left := time.Until(end); left < wait {
			wait, reason = left, RefusedStreamTimeout
		}
		lent, spent := p.handOff()
		w.exchange(resp, lent, spent, p.endAfter)
		timer.Reset(wait)
		var got received
		select {
		case got = <-w.got:
			w.sending = false
		case <-timer.C:
			return p.timedOut(reason, wait)
		}
		if got.sendErr != nil || p.endAfter {
			// A refusal by a limit ends the stream once answered: a direct peer would
			// otherwise hold the slot until the idle timeout (Envoy ends the stream on an
			// immediate response itself, so it never sees this end).
			return got.sendErr
		}
		if errors.Is(got.err, io.EOF) || status.Code(got.err) == codes.Canceled {
			return nil
		}
		if got.err != nil {
			return got.err
		}
		var err error
		if resp, err = p.handle(ctx, got.req); err != nil {
			return err
		}
		wait, reason = s.opts.IdleTimeout, RefusedIdleTimeout
	}
}

// timedOut ends a stream that waited longer than limit (reason names which) for its next
// message, or for its answer to be taken.
func (p *processor) timedOut(reason string, limit time.Duration) error {
	p.s.refused(reason)
	p.logger().Warn("ext_proc stream ended: timeout", "reason", reason, "limit", limit.String())
	return status.Errorf(codes.DeadlineExceeded, "ext_proc stream ended: %s (%s)", reason, limit)
}

// received is what the wire goroutine reports: the next message, or why there is none.
type received struct {
	req     *extprocv3.ProcessingRequest
	err     error // from Recv
	sendErr error // from Send of the previous answer
}

// send asks the wire goroutine to send an answer (if any) and then read the next message.
type send struct {
	last  bool // send resp and read nothing more
	resp  *extprocv3.ProcessingResponse
	lent  *[]byte // body buffer resp holds, given back to the pool after Send
	spent int64   // budget reservation of the body resp answers, released after Send
}

// wire runs Send and Recv of one stream on its own goroutine, one exchange at a time (never
// reading ahead: a body is read only after its reservation). When the handler returns, gRPC
// cancels the stream, which unblocks a pending Send or Recv; the goroutine then reports into
// its buffered channel and ends when close has been called. It owns each answer's buffer and
// reservation from exchange until Send returns, so they are given back exactly once, after the
// bytes are no longer in use, even when the handler has already returned.
type wire struct {
	s       *Server
	stream  extprocv3.ExternalProcessor_ProcessServer
	todo    chan send
	got     chan received
	started bool
	sending bool // an exchange with an answer is pending: the answer may be in Send
}

func newWire(s *Server, stream extprocv3.ExternalProcessor_ProcessServer) *wire {
	return &wire{s: s, stream: stream, todo: make(chan send, 1), got: make(chan received, 1)}
}

// exchange sends resp (nil for none) and reads the next message, reported on w.got.
// With last, only resp is sent, and w.got reports the end of Send.
func (w *wire) exchange(resp *extprocv3.ProcessingResponse, lent *[]byte, spent int64, last bool) {
	if !w.started {
		w.started = true
		go w.run()
	}
	w.sending = resp != nil
	w.todo <- send{last: last, resp: resp, lent: lent, spent: spent}
}

// close ends the wire goroutine once its current exchange (if any) returns.
func (w *wire) close() { close(w.todo) }

func (w *wire) run() {
	for t := range w.todo {
		if t.resp != nil {
			err := w.stream.Send(t.resp)
			if t.lent != nil {
				w.s.bodies.put(t.lent) // Send has encoded resp: its body buffer can be reused
			}
			w.s.budget.release(t.spent)
			if err != nil || t.last {
				w.got <- received{sendErr: err}
				return
			}
		} else {
			w.s.budget.release(t.spent)
		}
		req, err := w.stream.Recv()
		w.got <- received{req: req, err: err}
		if err != nil {
			return
		}
	}
}
