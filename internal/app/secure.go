package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/rkms/rkms/extproc"
	"github.com/rkms/rkms/internal/audit"
	"github.com/rkms/rkms/internal/config"
	"github.com/rkms/rkms/internal/keyapi"
	"github.com/rkms/rkms/internal/tlsconf"
)

// Limits of the admin listeners (ext_proc's come from the configuration).
const (
	// adminMaxHeaderBytes bounds the admin HTTP request line and headers: 431 above it.
	adminMaxHeaderBytes = 16 << 10
	// keyAPIMaxRecvBytes bounds one gRPC key API request (a key id): ResourceExhausted above it.
	// Rewrap alone may send up to keyapi.MaxRecvBytes (1 MiB).
	keyAPIMaxRecvBytes = 64 << 10
	// keyAPIMaxHeaderBytes bounds a key API request's metadata.
	keyAPIMaxHeaderBytes = 16 << 10
	// keyAPIMaxStreams bounds concurrent key API calls per connection.
	keyAPIMaxStreams = 256
)

// listenerSecurity is the transport security and limits of each listener.
type listenerSecurity struct {
	adminHTTP *tls.Config         // nil: plaintext
	keyAPI    []grpc.ServerOption // creds (if TLS) and limits
	extproc   []grpc.ServerOption // creds (if TLS)
}

// buildSecurity loads the TLS files of the configuration (admin.tls for the admin HTTP API and
// the gRPC key API, extproc.tls for ext_proc).
func buildSecurity(cfg *config.Config, log *slog.Logger) (*listenerSecurity, error) {
	s := &listenerSecurity{keyAPI: []grpc.ServerOption{
		grpc.MaxRecvMsgSize(keyapi.MaxRecvBytes),
		grpc.ChainUnaryInterceptor(keyapi.LimitRequests(keyAPIMaxRecvBytes)),
		grpc.MaxHeaderListSize(keyAPIMaxHeaderBytes),
		grpc.MaxConcurrentStreams(keyAPIMaxStreams),
	}}
	if f := cfg.Admin.TLS.Files(); f.Enabled() {
		var err error
		if s.adminHTTP, err = tlsconf.New(f, tlsconf.Options{NextProtos: []string{"h2", "http/1.1"}, Logger: log.With("listener", "admin")}); err != nil {
			return nil, fmt.Errorf("admin.tls: %w", err)
		}
		keyTLS, err := tlsconf.New(f, tlsconf.Options{NextProtos: []string{"h2"}, Logger: log.With("listener", "key_api")})
		if err != nil {
			return nil, fmt.Errorf("admin.tls: %w", err)
		}
		s.keyAPI = append(s.keyAPI, grpc.Creds(credentials.NewTLS(keyTLS)))
	}
	if f := cfg.ExtProc.TLS.Files(); f.Enabled() {
		c, err := tlsconf.New(f, tlsconf.Options{NextProtos: []string{"h2"}, Logger: log.With("listener", "extproc")})
		if err != nil {
			return nil, fmt.Errorf("extproc.tls: %w", err)
		}
		s.extproc = append(s.extproc, grpc.Creds(credentials.NewTLS(c)))
	}
	return s, nil
}

// scheme is how the admin API's address is printed.
func (s *listenerSecurity) scheme() string {
	if s.adminHTTP != nil {
		return "https"
	}
	return "http"
}

// extprocCaller is the audit resolver for key operations that ext_proc causes (a key created
// for a new tenant): the HTTP request id, and Envoy's address and client certificate.
func extprocCaller(ctx context.Context) (audit.Who, bool) {
	id := extproc.RequestID(ctx)
	if id == "" {
		return audit.Who{}, false
	}
	remote, subject := audit.PeerFromGRPC(ctx)
	return audit.Who{API: audit.APIExtProc, Remote: remote, Subject: subject, RequestID: id}, true
}

// tlsNote is the banner's note on a gRPC listener's transport.
func tlsNote(t config.TLS) string {
	switch f := t.Files(); {
	case f.MutualTLS():
		return " over mutual TLS"
	case f.Enabled():
		return " over TLS"
	}
	return ""
}

// revealAuditor writes ext_proc's reveal records (policies with response.reveal.audit) to the
// audit log; the caller comes from extprocCaller (the request id in ctx).
type revealAuditor struct{ a *audit.Logger }

var _ extproc.RevealAuditor = revealAuditor{}

func (r revealAuditor) AuditReveal(ctx context.Context, policy, keyID string, fields []extproc.RevealedField) {
	out := make([]audit.RevealField, len(fields))
	for i, f := range fields {
		out[i] = audit.RevealField{Field: f.Field, Rule: f.Rule, Action: f.Action, N: f.N}
	}
	r.a.RecordReveal(ctx, policy, keyID, out)
}
