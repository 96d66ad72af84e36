package extproc

import (
	"container/list"
	"context"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/peer"

	"github.com/rkms/rkms/extproc/limits"
)

// Reasons a stream or a message is refused by a limit, as passed to
// [LimitObserver.ObserveRefused]. The set is fixed (bounded metric labels).
const (
	RefusedStreamLimit         = "stream_limit"          // MaxConcurrentStreams reached: gRPC RESOURCE_EXHAUSTED
	RefusedClientShare         = "client_share"          // MaxStreamsPerClient reached: 429
	RefusedTenantShare         = "tenant_share"          // MaxStreamsPerTenant reached: 429
	RefusedMemory              = "memory"                // MemoryBudget cannot hold the body: 503
	RefusedFirstMessageTimeout = "first_message_timeout" // FirstMessageTimeout: gRPC DEADLINE_EXCEEDED
	RefusedIdleTimeout         = "idle_timeout"          // IdleTimeout: gRPC DEADLINE_EXCEEDED
	RefusedStreamTimeout       = "stream_timeout"        // StreamTimeout: gRPC DEADLINE_EXCEEDED
	RefusedProtocol            = "protocol"              // a message that breaks the protocol: gRPC FAILED_PRECONDITION
	RefusedLargeBody           = "large_body"            // no turn to transform a large body within KeyTimeout: 503
)

// BodyCostFactor is how many bytes rkms holds, at the peak of one body's transform, per byte of
// that body: the body as received (gRPC's message buffer and the decoded ProcessingRequest hold
// a copy each while the message is decoded), the rewritten body (a pooled buffer sized 1.5 times
// the body) and the encoded answer. TestBodyCostFactor measures it (4.64 for a 1 MiB body). A
// body reservation is this factor times the body's declared (or largest) size. The rule is
// owned by package limits.
const BodyCostFactor = limits.BodyCostFactor

// Stats is a snapshot of the server's limits, for metrics.
type Stats struct {
	Streams       int64 // streams in flight
	BudgetBytes   int64 // the memory budget (Options.MemoryBudget)
	ReservedBytes int64 // body bytes reserved against it now
}

// Stats returns the streams in flight and the state of the memory budget.
func (s *Server) Stats() Stats {
	return Stats{Streams: s.streams.Load(), BudgetBytes: s.budget.size, ReservedBytes: s.budget.used.Load()}
}

// budget is the memory budget for bodies held across all streams: a reservation is granted at
// once or refused, never queued.
type budget struct {
	size int64
	used atomic.Int64
}

// reserve takes n bytes of the budget if they are free and reports whether it did.
func (b *budget) reserve(n int64) bool {
	for {
		u := b.used.Load()
		if u+n > b.size {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

// release gives back n bytes taken by reserve.
func (b *budget) release(n int64) {
	if n != 0 {
		b.used.Add(-n)
	}
}

// shares counts streams per key (a client address or a tenant's key id) against one share
// each. The map holds one entry per key with a stream in flight, removed when its count drops
// to zero: it never has more entries than streams in flight (at most MaxConcurrentStreams).
type shares struct {
	limit int
	mu    sync.Mutex
	n     map[string]int
}

func newShares(limit int) *shares { return &shares{limit: limit, n: map[string]int{}} }

// acquire counts one more stream for key and reports whether it stays within the share.
func (sh *shares) acquire(key string) bool {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.n[key] >= sh.limit {
		return false
	}
	sh.n[key]++
	return true
}

// release counts one stream less for key (taken by a successful acquire).
func (sh *shares) release(key string) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if c := sh.n[key]; c > 1 {
		sh.n[key] = c - 1
	} else {
		delete(sh.n, key)
	}
}

// len is the number of keys with a stream in flight.
func (sh *shares) len() int {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return len(sh.n)
}

// silent holds, per ext_proc peer address, the streams that have not sent their first message
// yet, oldest first (see [Server.evictSilent]). It has one entry per peer with such a stream,
// removed when its last one speaks or ends.
type silent struct {
	mu     sync.Mutex
	byPeer map[string]*list.List // of *run
}

func newSilent() *silent { return &silent{byPeer: map[string]*list.List{}} }

// add records r as waiting for its first message from peer.
func (o *silent) add(peer string, r *run) *list.Element {
	o.mu.Lock()
	defer o.mu.Unlock()
	l := o.byPeer[peer]
	if l == nil {
		l = list.New()
		o.byPeer[peer] = l
	}
	return l.PushBack(r)
}

// remove forgets e (from add) unless evict took it already.
func (o *silent) remove(peer string, e *list.Element) {
	o.mu.Lock()
	defer o.mu.Unlock()
	l := o.byPeer[peer]
	if l == nil || e.Value == nil {
		return
	}
	l.Remove(e)
	e.Value = nil
	if l.Len() == 0 {
		delete(o.byPeer, peer)
	}
}

// evict takes the oldest silent stream of the peer other than except with the most of them, if
// it has at least min, and returns it; nil otherwise.
func (o *silent) evict(except string, min int) *run {
	o.mu.Lock()
	defer o.mu.Unlock()
	var peer string
	var most *list.List
	for p, l := range o.byPeer {
		if p != except && (most == nil || l.Len() > most.Len()) {
			peer, most = p, l
		}
	}
	if most == nil || most.Len() < max(min, 1) {
		return nil
	}
	e := most.Front()
	r := e.Value.(*run)
	most.Remove(e)
	e.Value = nil
	if most.Len() == 0 {
		delete(o.byPeer, peer)
	}
	return r
}

// len is the number of peers with a silent stream.
func (o *silent) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.byPeer)
}

// largeBody is the size from which a body's transform counts as large: it holds a CPU for
// milliseconds (about 10 ms for 700 KB), where a small body's takes microseconds.
const largeBody = 64 << 10

// largeBodies is how many large bodies are transformed at once: one CPU fewer than Go runs on
// (at least one), so that however many large bodies arrive, small requests always find a CPU
// free and are not queued behind them.
func largeBodies() int { return max(1, runtime.GOMAXPROCS(0)-1) }

// takeLarge waits for a turn to transform a large body, at most KeyTimeout (the bound of one
// message's work), and returns the function that gives it back. Past the wait the body is
// refused as overloaded (503, retry-after), as when the memory budget cannot hold it.
func (s *Server) takeLarge(ctx context.Context, ph phase) (func(), error) {
	release := func() { <-s.large }
	select {
	case s.large <- struct{}{}:
		return release, nil
	default:
	}
	t := time.NewTimer(s.opts.KeyTimeout)
	defer t.Stop()
	select {
	case s.large <- struct{}{}:
		return release, nil
	case <-t.C:
		return nil, limitError(kindOverloaded, ph, RefusedLargeBody, "rkms is busy, try again")
	case <-ctx.Done():
		return nil, limitError(kindOverloaded, ph, RefusedLargeBody, "rkms is busy, try again")
	}
}

// hostOnly strips the port of an address ("10.0.0.1:5000", "[::1]:5000"); an address without
// a port is returned as is.
func hostOnly(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// attrSourceAddress is the request attribute with the downstream client's address ("ip:port").
const attrSourceAddress = "source.address"

// clientKey names the client of a stream for MaxStreamsPerClient: the downstream address Envoy
// forwards (source.address, port stripped), trusted only from an authenticated ext_proc peer;
// otherwise the ext_proc peer's IP.
func clientKey(ctx context.Context, req *extprocv3.ProcessingRequest) string {
	if a := req.GetAttributes()[attributesNamespace].GetFields()[attrSourceAddress].GetStringValue(); a != "" && authenticatedPeer(ctx) {
		return hostOnly(a)
	}
	return peerIP(ctx)
}

// peerIP is the ext_proc peer's IP address ("" when unknown).
func peerIP(ctx context.Context) string {
	if pr, ok := peer.FromContext(ctx); ok && pr.Addr != nil {
		return hostOnly(pr.Addr.String())
	}
	return ""
}

// admit counts the stream against its client's share, on its first message.
func (p *processor) admit(ctx context.Context, req *extprocv3.ProcessingRequest) error {
	p.admitted = true
	key := clientKey(ctx, req)
	if !p.s.clients.acquire(key) {
		return limitError(kindBusy, messagePhaseOf(req), RefusedClientShare, "too many requests in flight from this client")
	}
	p.client, p.clientHeld = key, true
	return nil
}

// claimTenant counts the stream against its tenant's share, once the key id is known.
func (p *processor) claimTenant() error {
	if p.tenantHeld {
		return nil
	}
	if !p.s.tenants.acquire(p.keyID) {
		return limitError(kindBusy, phaseRequest, RefusedTenantShare, "too many requests in flight for this tenant")
	}
	p.tenantHeld = true
	return nil
}

// bodyCost is what a body of the given declared content-length may cost: BodyCostFactor times
// the length, or times MaxBodyBytes when the length is missing, malformed or over it.
func (p *processor) bodyCost(contentLength string) int64 {
	n, err := strconv.ParseInt(contentLength, 10, 64)
	if err != nil || n < 0 || n > int64(p.s.opts.MaxBodyBytes) {
		n = int64(p.s.opts.MaxBodyBytes)
	}
	return BodyCostFactor * n
}

// overBudget is the refusal of a body the memory budget cannot hold now.
func overBudget(ph phase) *procError {
	return limitError(kindOverloaded, ph, RefusedMemory, "rkms is busy, try again")
}

// reserve reserves the cost of the body that the headers of phase ph announce, before it is
// read. It never waits.
func (p *processor) reserve(ph phase, contentLength string) error {
	n := p.bodyCost(contentLength)
	if !p.s.budget.reserve(n) {
		return overBudget(ph)
	}
	p.reserved[ph] += n
	return nil
}

// holdBody makes sure the reservation of phase ph covers a body of n bytes that has arrived
// (a content-length that lied, no content-length, a body nobody announced), taking the
// difference from the budget.
func (p *processor) holdBody(ph phase, n int) error {
	need := BodyCostFactor * int64(n)
	if extra := need - p.reserved[ph]; extra > 0 {
		if !p.s.budget.reserve(extra) {
			return overBudget(ph)
		}
		p.reserved[ph] = need
	}
	return nil
}

// bodyDone moves the reservation of phase ph, whose body has been answered, to spent: it is
// released once the answer is sent.
func (p *processor) bodyDone(ph phase) {
	p.spent += p.reserved[ph]
	p.reserved[ph] = 0
}

// sent gives back what the answer just sent held: the lent body buffer, and the spent
// reservation except the answer's body bytes. gRPC's Send returns once the answer is encoded and
// queued, not once the peer has read it: until then the encoded body is still held (a peer that
// reads nothing holds it until the idle timeout), so that share stays reserved until the next
// message arrives (Envoy sends it only after reading the answer) or the stream ends.
func (p *processor) sent(resp *extprocv3.ProcessingResponse) {
	p.release()
	p.dropDecoded()
	body := resp.GetRequestBody().GetResponse().GetBodyMutation().GetBody()
	if body == nil {
		body = resp.GetResponseBody().GetResponse().GetBodyMutation().GetBody()
	}
	held := min(int64(len(body)), p.spent)
	p.s.budget.release(p.spent - held)
	p.spent = 0
	p.queued += held
}

// received gives back the reservation of answers the peer has read: it sent the next message.
func (p *processor) received() {
	p.s.budget.release(p.queued)
	p.queued = 0
}

// freeLimits gives back the shares and reservations p holds.
func (s *Server) freeLimits(p *processor) {
	if p.clientHeld {
		s.clients.release(p.client)
		p.clientHeld = false
	}
	if p.tenantHeld {
		s.tenants.release(p.keyID)
		p.tenantHeld = false
	}
	s.budget.release(p.reserved[0] + p.reserved[1] + p.spent + p.queued)
	p.reserved, p.spent, p.queued = [2]int64{}, 0, 0
}

// messagePhaseOf is the half of the exchange a message belongs to.
func messagePhaseOf(req *extprocv3.ProcessingRequest) phase {
	switch req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_ResponseHeaders, *extprocv3.ProcessingRequest_ResponseBody, *extprocv3.ProcessingRequest_ResponseTrailers:
		return phaseResponse
	}
	return phaseRequest
}
