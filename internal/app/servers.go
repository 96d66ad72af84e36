package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/rkms/rkms/extproc"
	"github.com/rkms/rkms/internal/config"
)

// listeners are the sockets rkms serves on.
type listeners struct {
	extproc, admin net.Listener
	keyAPI         net.Listener // nil: admin.grpc_listen is empty
}

// listen opens every configured listener, or none.
func listen(cfg *config.Config) (*listeners, error) {
	grpcLis, err := net.Listen("tcp", cfg.ExtProc.Listen)
	if err != nil {
		return nil, fmt.Errorf("ext_proc listener: %w", err)
	}
	adminLis, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		grpcLis.Close()
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	l := &listeners{extproc: grpcLis, admin: adminLis}
	if cfg.Admin.GRPCListen != "" {
		if l.keyAPI, err = net.Listen("tcp", cfg.Admin.GRPCListen); err != nil {
			grpcLis.Close()
			adminLis.Close()
			return nil, fmt.Errorf("admin grpc listener: %w", err)
		}
	}
	return l, nil
}

// keyAPIAddr is the key API's address as printed, or "disabled".
func (l *listeners) keyAPIAddr() string {
	if l.keyAPI == nil {
		return "disabled"
	}
	return l.keyAPI.Addr().String()
}

// servers are the three servers of rkms: ext_proc with the gRPC health check, the admin HTTP
// API and the gRPC key API.
type servers struct {
	grpc   *grpc.Server // ext_proc and health
	health *health.Server
	admin  *http.Server
	keyAPI *grpc.Server
}

// newServers makes the servers; the health check reports NOT_SERVING until ready is called.
func newServers(ext *extproc.Server, a *apis, sec *listenerSecurity, log *slog.Logger) *servers {
	// Envoy sends a buffered body as one message: the server sizes gRPC's limits to the body limit.
	gs := grpc.NewServer(append(ext.GRPCServerOptions(), sec.extproc...)...)
	ext.Register(gs)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)

	hsrv := &http.Server{Handler: a.admin, ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute,
		MaxHeaderBytes: adminMaxHeaderBytes, TLSConfig: sec.adminHTTP,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}

	// The key API has its own gRPC server: its listener may be exposed where ext_proc's is not.
	ks := grpc.NewServer(append(slices.Clone(sec.keyAPI), a.keySvc.ServerOptions()...)...)
	a.keySvc.Register(ks)
	reflection.Register(ks)
	return &servers{grpc: gs, health: hs, admin: hsrv, keyAPI: ks}
}

// ready turns the gRPC health check to SERVING.
func (s *servers) ready() { s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING) }

// start serves on l in the background; the channel gets the error of each server that stops.
func (s *servers) start(l *listeners) <-chan error {
	errc := make(chan error, 3)
	go func() { errc <- s.grpc.Serve(l.extproc) }()
	go func() {
		if s.admin.TLSConfig != nil {
			errc <- s.admin.ServeTLS(l.admin, "", "")
			return
		}
		errc <- s.admin.Serve(l.admin)
	}()
	if l.keyAPI != nil {
		go func() { errc <- s.keyAPI.Serve(l.keyAPI) }()
	}
	return errc
}

// shutdown reports NOT_SERVING, then lets in-flight requests finish for at most shutdownGrace
// before it stops the servers hard.
func (s *servers) shutdown() {
	s.health.Shutdown()
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	_ = s.admin.Shutdown(sctx)
	stopped := make(chan struct{})
	go func() { s.grpc.GracefulStop(); s.keyAPI.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-sctx.Done():
		s.grpc.Stop()
		s.keyAPI.Stop()
	}
}
