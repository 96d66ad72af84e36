package extproc

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"

	"github.com/rkms/rkms/extproc/grpccodec"
	"github.com/rkms/rkms/extproc/limits"
	"github.com/rkms/rkms/extproc/policy"
)

// Defaults for [Options]: the rules live in package limits (which the config loader reads
// without importing this server); these names are the same values.
const (
	DefaultMaxBodyBytes         = limits.DefaultMaxBodyBytes
	DefaultKeyTimeout           = limits.DefaultKeyTimeout
	DefaultMaxFields            = limits.DefaultMaxFields
	DefaultMaxConcurrentStreams = limits.DefaultMaxConcurrentStreams
	DefaultStreamTimeout        = limits.DefaultStreamTimeout
	DefaultIdleTimeout          = limits.DefaultIdleTimeout
	DefaultFirstMessageTimeout  = limits.DefaultFirstMessageTimeout
	DefaultMemoryBudget         = limits.DefaultMemoryBudget
	DefaultMaxCompressionRatio  = limits.DefaultMaxCompressionRatio
	// streamWindow is the HTTP/2 flow-control window of a stream: what a peer can push that
	// rkms has not asked to read. Explicit windows also turn off grpc-go's BDP-driven growth.
	streamWindow = 64 << 10
	// connWindow is the window of one connection: 16 streams' worth.
	connWindow = 16 * streamWindow
)

// PolicyMetadataKey is the gRPC initial metadata key through which an Envoy route names its
// policy (ExtProcPerRoute overrides.grpc_initial_metadata).
const PolicyMetadataKey = "x-rkms-policy"

// Options tune a [Server]. The zero value is usable.
type Options struct {
	// Logger receives one request-scoped logger per stream (request_id, policy). Nil: discard.
	Logger *slog.Logger
	// MaxBodyBytes is the largest body the server transforms; larger ones are refused (413 on
	// requests, 502 on responses). 0 means DefaultMaxBodyBytes. Keep it at or above Envoy's
	// buffer limit.
	MaxBodyBytes int
	// KeyTimeout bounds the key lookups of one message. It must stay below Envoy's
	// message_timeout so that a slow key service gives a clean 503 rather than Envoy's 504.
	// 0 means DefaultKeyTimeout.
	KeyTimeout time.Duration
	// MaxFields is the most values one body may have selected by the policy's fields; a body
	// with more is refused (413 on requests, 502 on responses). 0 means DefaultMaxFields.
	MaxFields int
	// MaxConcurrentStreams bounds the streams (HTTP requests) in flight: per HTTP/2 connection
	// through [Server.GRPCServerOptions], and across the server, where a stream beyond it ends
	// at once with RESOURCE_EXHAUSTED (Envoy then answers status_on_error). 0 means
	// DefaultMaxConcurrentStreams.
	MaxConcurrentStreams int
	// MaxStreamsPerClient bounds the streams of one client: the address of Envoy's downstream
	// peer (request attribute source.address, port stripped), trusted only from an
	// authenticated ext_proc peer, else the ext_proc peer's IP. A stream over it is answered
	// 429 with retry-after. Counted from the stream's first message. 0 means
	// MaxConcurrentStreams/4.
	MaxStreamsPerClient int
	// MaxStreamsPerTenant bounds the streams of one tenant (the key id the policy computes),
	// from the message that computes it. A stream over it is answered 429 with retry-after. 0
	// means MaxConcurrentStreams/4.
	MaxStreamsPerTenant int
	// StreamTimeout bounds a stream's life; FirstMessageTimeout the wait for its first message;
	// IdleTimeout the wait for each next message after an answer. A stream over any of them
	// ends with gRPC DEADLINE_EXCEEDED (Envoy answers status_on_error). 0 means
	// DefaultStreamTimeout, DefaultFirstMessageTimeout, DefaultIdleTimeout.
	StreamTimeout, FirstMessageTimeout, IdleTimeout time.Duration
	// MemoryBudget bounds the body bytes held across all streams: a body's cost
	// (BodyCostFactor times its content-length, or MaxBodyBytes when unknown) is reserved when
	// its headers arrive; a body that does not fit is answered 503 with retry-after at once,
	// never queued. It must hold at least one MaxBodyBytes body. 0 means DefaultMemoryBudget
	// (or one largest body, if more).
	MemoryBudget int64
	// TrustRequestID uses Envoy's x-request-id as the request id (logs, the context Keys gets,
	// hence audit records). Set it only when Envoy generates that id for every request
	// (envoy/README.md, "Request ids"); otherwise a client could forge audit correlation, and
	// the server makes its own id and logs the client's as client_request_id.
	TrustRequestID bool
	// Observer, if not nil, is told about every message answered and every field transformed
	// (for metrics). Nil costs nothing.
	Observer Observer
	// RevealAuditor, if not nil, gets an audit record of each response body of a policy that
	// sets response.reveal.audit. Nil writes none.
	RevealAuditor RevealAuditor
	// MaxCompressionRatio bounds a compressed body's decoded size per encoded byte, besides
	// MaxBodyBytes (which bounds the decoded size): a body over either is refused (413 on
	// requests, 502 on responses) without being decoded further. 0 means
	// DefaultMaxCompressionRatio.
	MaxCompressionRatio int
	// SlowTrace, if not nil, captures a Go execution trace when a stream takes longer than its
	// threshold (see [SlowTraceOptions]); [Server.Close] stops it. Nil costs nothing.
	SlowTrace *SlowTraceOptions
}

// Server is the Envoy ext_proc gRPC service. It is safe for concurrent use; each stream gets
// its own processor.
type Server struct {
	extprocv3.UnimplementedExternalProcessorServer

	policies *policy.Set
	stamps   stamps
	keys     Keys
	opts     Options
	log      *slog.Logger
	bodies   bodyPool  // buffers of rewritten bodies
	procs    sync.Pool // *processor, one per stream in flight
	modes    modes
	obs      Observer
	streams  atomic.Int64  // streams in flight, bounded by MaxConcurrentStreams
	clients  *shares       // streams per client, bounded by MaxStreamsPerClient
	openers  *silent       // streams still waiting for their first message, per ext_proc peer (evictSilent)
	tenants  *shares       // streams per tenant, bounded by MaxStreamsPerTenant
	budget   budget        // body bytes reserved, bounded by MemoryBudget
	large    chan struct{} // one token per large body being transformed (largeBodies)
	lim      LimitObserver
	revObs   RevealObserver // opts.Observer, when it counts reveals
	auditor  RevealAuditor  // opts.RevealAuditor
	slow     *slowTracer    // nil unless Options.SlowTrace
	runners  runners        // goroutines that serve streams, kept between streams
}

var _ extprocv3.ExternalProcessorServer = (*Server)(nil)

// NewServer compiles policies (every problem is reported, naming the policy and field) and
// returns a server that seals and opens fields with keys.
func NewServer(policies []policy.Config, keys Keys, opts Options) (*Server, error) {
	compiled, err := policy.Compile(policies)
	if err != nil {
		return nil, fmt.Errorf("new ext_proc server: %w", err)
	}
	return NewServerFromSet(compiled, keys, opts)
}

// NewServerFromSet is [NewServer] for policies already compiled (by the config loader, which
// compiled them while checking the file).
func NewServerFromSet(compiled *policy.Set, keys Keys, opts Options) (*Server, error) {
	if compiled == nil {
		return nil, fmt.Errorf("new ext_proc server: policies are required")
	}
	if keys == nil {
		return nil, fmt.Errorf("new ext_proc server: keys are required")
	}
	if err := opts.withDefaults(); err != nil {
		return nil, fmt.Errorf("new ext_proc server: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{policies: compiled, stamps: newStamps(compiled.Policies()), keys: keys, opts: opts, log: log, obs: opts.Observer, modes: newModes(),
		clients: newShares(opts.MaxStreamsPerClient), openers: newSilent(), tenants: newShares(opts.MaxStreamsPerTenant)}
	s.budget.size = opts.MemoryBudget
	s.runners.init(maxIdleRunners, runnerIdle)
	s.large = make(chan struct{}, largeBodies())
	s.lim, _ = opts.Observer.(LimitObserver)
	s.revObs, _ = opts.Observer.(RevealObserver)
	s.auditor = opts.RevealAuditor
	if opts.SlowTrace != nil {
		var err error
		if s.slow, err = newSlowTracer(*opts.SlowTrace, log); err != nil {
			return nil, fmt.Errorf("new ext_proc server: %w", err)
		}
	}
	return s, nil
}

// withDefaults checks o and replaces its zero values by the defaults.
func (o *Options) withDefaults() error {
	if o.KeyTimeout < 0 || o.StreamTimeout < 0 || o.IdleTimeout < 0 || o.FirstMessageTimeout < 0 {
		return fmt.Errorf("timeouts must not be negative")
	}
	orDefault(&o.MaxFields, DefaultMaxFields)
	orDefault(&o.MaxConcurrentStreams, DefaultMaxConcurrentStreams)
	orDefault(&o.MaxBodyBytes, DefaultMaxBodyBytes)
	orDefault(&o.MaxCompressionRatio, DefaultMaxCompressionRatio)
	if err := errors.Join(
		optionErr("MaxCompressionRatio", limits.CheckMaxCompressionRatio(o.MaxCompressionRatio)),
		optionErr("MaxBodyBytes", limits.CheckMaxBodyBytes(int64(o.MaxBodyBytes))),
		optionErr("MaxFields", limits.CheckMaxFields(o.MaxFields)),
		optionErr("MaxConcurrentStreams", limits.CheckMaxConcurrentStreams(o.MaxConcurrentStreams)),
		optionErr("MaxStreamsPerClient", limits.CheckStreamShare(o.MaxStreamsPerClient, o.MaxConcurrentStreams)),
		optionErr("MaxStreamsPerTenant", limits.CheckStreamShare(o.MaxStreamsPerTenant, o.MaxConcurrentStreams)),
		optionErr("MemoryBudget", limits.CheckMemoryBudget(o.MemoryBudget, o.MaxBodyBytes)),
		optionErr("SlowTrace", CheckSlowTrace(o.SlowTrace)),
	); err != nil {
		return err
	}
	orDefault(&o.MaxStreamsPerClient, max(1, o.MaxConcurrentStreams/4))
	orDefault(&o.MaxStreamsPerTenant, max(1, o.MaxConcurrentStreams/4))
	orDefault(&o.KeyTimeout, DefaultKeyTimeout)
	orDefault(&o.StreamTimeout, DefaultStreamTimeout)
	orDefault(&o.IdleTimeout, DefaultIdleTimeout)
	orDefault(&o.FirstMessageTimeout, DefaultFirstMessageTimeout)
	if o.MemoryBudget == 0 {
		o.MemoryBudget = limits.Budget(0, false, o.MaxBodyBytes)
	}
	return nil
}

// orDefault sets *v to d when *v is zero.
func orDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// optionErr names the option a check failed for (nil stays nil).
func optionErr(name string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", name, err)
}

// Register adds the ExternalProcessor service to g. Create g with [Server.GRPCServerOptions].
func (s *Server) Register(g *grpc.Server) { extprocv3.RegisterExternalProcessorServer(g, s) }

// GRPCServerOptions returns the options the gRPC server needs for this service: a receive
// limit that fits a MaxBodyBytes body plus its headers (grpc-go's default is 4 MiB),
// MaxConcurrentStreams per connection (advertised to Envoy in HTTP/2 SETTINGS), and fixed
// flow-control windows (64 KiB per stream, 1 MiB per connection) so that the data a peer can
// push before rkms reads it stays bounded; fixed windows also turn off grpc-go's BDP-driven
// window growth; and rkms's codec (extproc/grpccodec: protobuf as grpc-go's default codec, with
// vtprotobuf marshalling of the answers when built with the tag vtprotobuf), for this server only.
func (s *Server) GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpccodec.ServerOption(),
		grpc.MaxRecvMsgSize(s.opts.MaxBodyBytes + 1<<20),
		grpc.MaxConcurrentStreams(uint32(s.opts.MaxConcurrentStreams)),
		grpc.InitialWindowSize(streamWindow),
		grpc.InitialConnWindowSize(connWindow),
	}
}
