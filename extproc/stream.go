package extproc

import (
	"container/list"
	"errors"
	"io"
	"sync/atomic"
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
// return cancels them; so the stream is served on a second goroutine (see [run] and
// [runners]) while the
// handler waits for its end or for its watchdog timer.
func (s *Server) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	opener := peerIP(stream.Context())
	if n := s.streams.Add(1); n > int64(s.opts.MaxConcurrentStreams) && !s.evictSilent(opener) {
		s.streams.Add(-1)
		s.refused(RefusedStreamLimit)
		s.log.Warn("ext_proc stream refused: too many concurrent streams", "limit", s.opts.MaxConcurrentStreams)
		return status.Errorf(codes.ResourceExhausted, "too many concurrent ext_proc streams (limit %d)", s.opts.MaxConcurrentStreams)
	}
	r := s.newRun(stream)
	r.opener, r.opening = opener, s.openers.add(opener, r)
	s.runners.start(r)
	if err := <-r.done; err != errTimedOut {
		return err
	}
	// Returning cancels the stream: the serving goroutine's Recv or Send returns, and it frees
	// the stream's slot, shares and reservations, and logs the timeout with the request id.
	if r.evicted.Load() {
		s.refused(RefusedClientShare)
		return status.Errorf(codes.ResourceExhausted, "ext_proc stream ended: its peer holds too many streams without a first message (share %d)", s.opts.MaxStreamsPerClient)
	}
	reason, limit := r.expiry()
	s.refused(reason)
	return status.Errorf(codes.DeadlineExceeded, "ext_proc stream ended: %s (%s)", reason, limit)
}

// evictSilent makes room for a stream from peer when every slot is taken: it ends the oldest
// stream still waiting for its first message of the other peer that has the most such streams,
// if that peer holds at least MaxStreamsPerClient of them, and reports whether it did. A peer's
// own new streams never evict its silent ones: they are refused at once, the cheapest answer
// to a peer that keeps opening streams it does not use. The new stream takes the slot
// at once; the evicted stream gives its own back when its goroutine ends (microseconds later),
// so streams in flight may exceed MaxConcurrentStreams by the evictions in progress.
//
// Until its first message says who its client is, a stream is known only by its ext_proc peer.
// Envoy sends that message as soon as it opens a stream, so its streams pass through this state
// in microseconds (a burst of hundreds can still be there at once, which is why the peer share is
// not applied to them until the slots run out); a peer that opens streams and stays silent is
// the one whose streams give way.
func (s *Server) evictSilent(peer string) bool {
	victim := s.openers.evict(peer, s.opts.MaxStreamsPerClient)
	if victim == nil {
		return false
	}
	victim.evicted.Store(true)
	if victim.fired.CompareAndSwap(false, true) {
		victim.done <- errTimedOut
	}
	return true
}

// errTimedOut is what the watchdog reports on run.done.
var errTimedOut = errors.New("ext_proc stream timed out")

// timeoutReasons index the reasons a watchdog can report (run.reason).
var timeoutReasons = [...]string{RefusedFirstMessageTimeout, RefusedIdleTimeout, RefusedStreamTimeout}

// run is one stream being served. Its goroutine (serve) owns the processor and does every Recv,
// handle and Send, one message at a time (never reading ahead: a body is read only after its
// reservation); it frees everything the stream holds when it ends. The watchdog (a timer armed
// at each wait, for the wait's limit or what is left of the stream's life) reports on done when
// a wait outlives its limit; the handler then returns, which cancels the stream.
type run struct {
	s      *Server
	stream extprocv3.ExternalProcessor_ProcessServer
	done   chan error // the stream's end: serve's error, or errTimedOut; room for both
	timer  *time.Timer
	end    time.Time    // start + StreamTimeout
	until  atomic.Int64 // the current wait's end (unix ns); 0 while a message is handled
	reason atomic.Int32 // index in timeoutReasons of the current wait's limit
	limit  atomic.Int64 // the current wait's limit (ns)
	fired  atomic.Bool

	evicted atomic.Bool // ended by evictSilent, not by a timeout (fired is set too)

	start time.Time // the stream's start (the slow-stream trace's clock)

	opener  string        // the ext_proc peer's address
	opening *list.Element // r in s.openers until the first message; nil after (serve's)
}

// opened stops counting the stream as waiting for its first message (once).
func (r *run) opened() {
	if r.opening != nil {
		r.s.openers.remove(r.opener, r.opening)
		r.opening = nil
	}
}

func (s *Server) newRun(stream extprocv3.ExternalProcessor_ProcessServer) *run {
	now := time.Now()
	r := &run{s: s, stream: stream, done: make(chan error, 2), start: now, end: now.Add(s.opts.StreamTimeout)}
	r.arm(s.opts.FirstMessageTimeout, 0)
	r.timer = time.AfterFunc(time.Duration(r.limit.Load()), r.fire)
	return r
}

// arm starts a wait of at most limit (reason: index in timeoutReasons), or what is left of the
// stream's life if that is shorter.
func (r *run) arm(limit time.Duration, reason int32) {
	now := time.Now()
	if left := r.end.Sub(now); left < limit {
		limit, reason = max(left, 0), 2
	}
	r.reason.Store(reason)
	r.limit.Store(int64(limit))
	r.until.Store(now.Add(limit).UnixNano())
	if r.timer != nil {
		r.timer.Reset(limit)
	}
}

// fire is the watchdog: it reports the end of a wait that outlived its limit. A timer that
// fires while a message is being handled (until is 0), or for a wait since re-armed, is ignored.
func (r *run) fire() {
	if u := r.until.Load(); u == 0 || time.Now().UnixNano() < u {
		return
	}
	if r.fired.CompareAndSwap(false, true) {
		r.done <- errTimedOut
	}
}

// expiry names the limit that ended the stream and its value.
func (r *run) expiry() (string, time.Duration) {
	return timeoutReasons[r.reason.Load()], time.Duration(r.limit.Load())
}

// serve is the stream's loop, on its own goroutine.
func (r *run) serve() {
	s := r.s
	ctx, endTask := s.slow.stream(r.stream.Context())
	p := s.newProcessor(ctx)
	defer func() {
		r.timer.Stop()
		s.slow.ended(ctx, time.Since(r.start), p.logger)
		endTask()
		if r.fired.Load() && !r.evicted.Load() {
			reason, limit := r.expiry()
			p.logger().Warn("ext_proc stream ended: timeout", "reason", reason, "limit", limit.String())
		}
		r.opened()
		s.freeProcessor(p)
		s.streams.Add(-1)
	}()
	for {
		req, err := r.stream.Recv()
		r.until.Store(0) // handling: bounded by KeyTimeout, not by the watchdog
		r.opened()
		p.received()
		if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled {
			r.done <- nil
			return
		}
		if err != nil {
			r.done <- err
			return
		}
		endMsg := s.slow.message(ctx)
		resp, err := p.handle(ctx, req)
		endMsg()
		if err != nil {
			r.done <- err
			return
		}
		r.arm(s.opts.IdleTimeout, 1) // covers Send too: a peer that reads nothing is bounded
		if resp == nil {
			continue // data after a streamed body's end is not answered (duplex.go), a held answer (pipelined.go)
		}
		if p.before != nil {
			b := p.before
			p.before = nil
			if err := r.stream.Send(b); err != nil {
				r.done <- err
				return
			}
		}
		err = r.stream.Send(resp)
		p.sent(resp) // Send has encoded resp: its body buffer and most of its reservation can be given back
		if err != nil || p.endAfter {
			// A refusal by a limit ends the stream once answered: a direct peer would
			// otherwise hold the slot until the idle timeout (Envoy ends the stream on an
			// immediate response itself, so it never sees this end).
			r.done <- err
			return
		}
	}
}
