package audit

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/rkms/rkms/keyring"
	"github.com/rkms/rkms/store"
)

// APIs that appear in the api attribute.
const (
	APIHTTP    = "http"
	APIGRPC    = "grpc"
	APIExtProc = "extproc"
)

// Operations that appear in the op attribute.
const (
	OpRead   = "read"
	OpCreate = "create"
	OpRotate = "rotate"
	OpDelete = "delete"
	OpList   = "list"
	OpRewrap = "rewrap" // one record per call: [Logger.RecordBatch]
)

// Results that appear in the result attribute.
const (
	ResultOK          = "ok"
	ResultDenied      = "denied"
	ResultInvalid     = "invalid"
	ResultNotFound    = "not_found"
	ResultDeleted     = "deleted"
	ResultExists      = "exists"
	ResultUnavailable = "unavailable"
	ResultError       = "error"
)

// ErrDenied marks a call refused for lack of a valid token; [Result] maps it to "denied".
var ErrDenied = errors.New("missing or invalid bearer token")

// ErrForbidden marks a call by an authenticated caller whose credential does not allow the
// operation on that key id; [Result] maps it to "denied" (the principal attribute says who).
var ErrForbidden = errors.New("operation not allowed for this credential")

// Who is the caller of a key operation.
type Who struct {
	API       string // APIHTTP, APIGRPC or APIExtProc
	Remote    string // peer address
	Subject   string // verified client certificate subject (mutual TLS), else empty
	RequestID string // ext_proc: the HTTP request id
	// Principal is the name of the credential the caller authenticated with (admin and key
	// APIs); empty when it did not authenticate.
	Principal string
}

type whoKey struct{}

// WithWho returns ctx carrying w.
func WithWho(ctx context.Context, w Who) context.Context { return context.WithValue(ctx, whoKey{}, w) }

// WhoFrom returns the Who that ctx carries.
func WhoFrom(ctx context.Context) (Who, bool) {
	w, ok := ctx.Value(whoKey{}).(Who)
	return w, ok
}

// PeerFromGRPC returns the address and, over mutual TLS, the verified client certificate's
// subject of the gRPC peer of ctx.
func PeerFromGRPC(ctx context.Context) (remote, subject string) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", ""
	}
	if p.Addr != nil {
		remote = p.Addr.String()
	}
	if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 && len(ti.State.PeerCertificates) > 0 {
		subject = ti.State.PeerCertificates[0].Subject.String()
	}
	return remote, subject
}

// PeerFromHTTP returns the address and, over mutual TLS, the verified client certificate's
// subject of the client of r.
func PeerFromHTTP(r *http.Request) (remote, subject string) {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.PeerCertificates) > 0 {
		subject = r.TLS.PeerCertificates[0].Subject.String()
	}
	return r.RemoteAddr, subject
}

// Resolver finds the caller of a key operation in a context that carries no [Who] (for example
// ext_proc's, where building a Who for every cached key lookup would cost more than the lookup).
// It is only called when a record is written.
type Resolver func(ctx context.Context) (Who, bool)

// Logger writes audit records. The zero value is not usable: call [New].
type Logger struct {
	log       *slog.Logger
	resolvers []Resolver
}

// New returns a Logger writing to l (nil: discard) with the attribute logger=audit. resolvers
// are tried in order when a context carries no Who.
func New(l *slog.Logger, resolvers ...Resolver) *Logger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &Logger{log: l.With("logger", "audit"), resolvers: resolvers}
}

func (a *Logger) who(ctx context.Context) Who {
	if w, ok := WhoFrom(ctx); ok {
		return w
	}
	for _, r := range a.resolvers {
		if w, ok := r(ctx); ok {
			return w
		}
	}
	return Who{}
}

// Record writes one record for op on keyID by the caller in ctx. version 0 is omitted; an
// invalid keyID is omitted (it is attacker-chosen text that failed validation). err, when not
// nil, sets result with [Result] and is recorded as the cause.
func (a *Logger) Record(ctx context.Context, op, keyID string, version uint32, err error) {
	who := a.who(ctx)
	attrs := make([]slog.Attr, 0, 10)
	attrs = append(attrs, slog.String("api", orUnknown(who.API)), slog.String("op", op))
	if validID(keyID) {
		attrs = append(attrs, slog.String("key_id", keyID))
	}
	if version != 0 {
		attrs = append(attrs, slog.Uint64("version", uint64(version)))
	}
	attrs = append(attrs, slog.String("result", Result(err)), slog.String("remote", who.Remote))
	attrs = whoAttrs(attrs, who)
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	a.log.LogAttrs(ctx, slog.LevelInfo, "audit", attrs...)
}

func validID(id string) bool { return keyring.ValidateID(id) == nil }

// whoAttrs appends who's principal, subject and request id, each when set.
func whoAttrs(attrs []slog.Attr, who Who) []slog.Attr {
	if who.Principal != "" {
		attrs = append(attrs, slog.String("principal", who.Principal))
	}
	if who.Subject != "" {
		attrs = append(attrs, slog.String("subject", who.Subject))
	}
	if who.RequestID != "" {
		attrs = append(attrs, slog.String("request_id", who.RequestID))
	}
	return attrs
}

// Result classifies err for the result attribute: a table over [keyring.ClassOf], plus the
// store's own errors (records written through [Logger.WrapStore]) and [ErrDenied].
func Result(err error) string {
	if err == nil {
		return ResultOK
	}
	switch c := keyring.ClassOf(err); {
	case errors.Is(err, ErrDenied), errors.Is(err, ErrForbidden):
		return ResultDenied
	case c == keyring.ClassInvalid:
		return ResultInvalid
	case c == keyring.ClassDeleted:
		return ResultDeleted
	case c == keyring.ClassExists:
		return ResultExists
	case c == keyring.ClassNotFound, errors.Is(err, store.ErrNotFound):
		return ResultNotFound
	case c == keyring.ClassUnavailable, c == keyring.ClassCanceled, errors.Is(err, store.ErrUnavailable):
		return ResultUnavailable
	default:
		return ResultError
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "internal"
	}
	return s
}

// WrapStore returns st recording a create for every key record this replica writes first
// (store.Create succeeding), and for every attempt that failed other than by losing the race
// (store.ErrExists: another writer created the key, and recorded it).
func (a *Logger) WrapStore(st store.Store) store.Store { return &auditedStore{Store: st, a: a} }

type auditedStore struct {
	store.Store
	a *Logger
}

var _ store.Store = (*auditedStore)(nil)

func (s *auditedStore) Create(ctx context.Context, rec *store.Record) error {
	err := s.Store.Create(ctx, rec)
	if errors.Is(err, store.ErrExists) {
		return err
	}
	s.a.Record(ctx, OpCreate, rec.ID, rec.Current, err)
	return err
}
