package extproc

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"

	"github.com/rkms/rkms/extproc/policy"
)

// Defaults for [Options].
const (
	DefaultMaxBodyBytes = 1 << 20                 // Envoy's default per-connection buffer limit
	DefaultKeyTimeout   = 1500 * time.Millisecond // below the 2 s message_timeout of the shipped configs
	// DefaultMaxFields bounds the values one body may have selected (each costs a seal or open).
	DefaultMaxFields = 10000
	// DefaultMaxConcurrentStreams bounds the streams in flight, per connection and in the server.
	DefaultMaxConcurrentStreams = 1024
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
	// TrustRequestID uses Envoy's x-request-id as the request id (logs, the context Keys gets,
	// hence audit records). Set it only when Envoy generates that id for every request
	// (envoy/README.md, "Request ids"); otherwise a client could forge audit correlation, and
	// the server makes its own id and logs the client's as client_request_id.
	TrustRequestID bool
	// Observer, if not nil, is told about every message answered and every field transformed
	// (for metrics). Nil costs nothing.
	Observer Observer
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
	streams  atomic.Int64 // streams in flight, bounded by MaxConcurrentStreams
}

var _ extprocv3.ExternalProcessorServer = (*Server)(nil)

// NewServer compiles policies (every problem is reported, naming the policy and field) and
// returns a server that seals and opens fields with keys.
func NewServer(policies []policy.Config, keys Keys, opts Options) (*Server, error) {
	if keys == nil {
		return nil, fmt.Errorf("new ext_proc server: keys are required")
	}
	if opts.MaxBodyBytes < 0 || opts.KeyTimeout < 0 || opts.MaxFields < 0 || opts.MaxConcurrentStreams < 0 {
		return nil, fmt.Errorf("new ext_proc server: MaxBodyBytes, KeyTimeout, MaxFields and MaxConcurrentStreams must not be negative")
	}
	if opts.MaxFields == 0 {
		opts.MaxFields = DefaultMaxFields
	}
	if opts.MaxConcurrentStreams == 0 {
		opts.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.KeyTimeout == 0 {
		opts.KeyTimeout = DefaultKeyTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	compiled, err := policy.Compile(policies)
	if err != nil {
		return nil, fmt.Errorf("new ext_proc server: %w", err)
	}
	return &Server{policies: compiled, stamps: newStamps(compiled.Policies()), keys: keys, opts: opts, log: log, obs: opts.Observer, modes: newModes()}, nil
}

// Register adds the ExternalProcessor service to g. Create g with [Server.GRPCServerOptions].
func (s *Server) Register(g *grpc.Server) { extprocv3.RegisterExternalProcessorServer(g, s) }

// GRPCServerOptions returns the options the gRPC server needs for this service: a receive
// limit that fits a MaxBodyBytes body plus its headers (grpc-go's default is 4 MiB), and
// MaxConcurrentStreams per connection (advertised to Envoy in HTTP/2 SETTINGS).
func (s *Server) GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(s.opts.MaxBodyBytes + 1<<20),
		grpc.MaxConcurrentStreams(uint32(s.opts.MaxConcurrentStreams)),
	}
}
