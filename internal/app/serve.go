package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/rkms/rkms/extproc"
	"github.com/rkms/rkms/extproc/policy"
	"github.com/rkms/rkms/internal/admin"
	"github.com/rkms/rkms/internal/audit"
	"github.com/rkms/rkms/internal/config"
	"github.com/rkms/rkms/internal/keyapi"
	"github.com/rkms/rkms/internal/keyservice"
	"github.com/rkms/rkms/internal/keysource"
	"github.com/rkms/rkms/internal/memlimit"
	"github.com/rkms/rkms/internal/metrics"
	"github.com/rkms/rkms/keyring"
)

// shutdownGrace bounds how long in-flight requests may finish after a stop signal.
const shutdownGrace = 10 * time.Second

// Serve runs rkms with cfg until ctx ends. defaults says cfg is the embedded default (it changes
// only what is printed at start).
func Serve(ctx context.Context, cfg *config.Config, defaults bool, stdout, stderr io.Writer) error {
	log := newLogger(cfg.Log, stderr)
	token, generated, err := adminToken(cfg.Admin.TokenFile)
	if err != nil {
		return err
	}
	if generated {
		fmt.Fprintf(stdout, "rkms: generated admin token in %s\n", cfg.Admin.TokenFile)
	}

	// Metrics decorate the regions and the store; the keyring itself is read at scrape time.
	m := metrics.New()
	regions, err := buildRegions(ctx, cfg, log)
	if err != nil {
		return err
	}
	for i := range regions {
		regions[i] = m.WrapRegion(regions[i])
	}
	st, err := buildStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	// Key creation is audited where the record is first written, whichever API caused it.
	auditLog := audit.New(log, extprocCaller)
	kr, err := keyring.New(auditLog.WrapStore(m.WrapStore(st)), regions, keyringOptions(cfg, log))
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	defer kr.Close()
	if err := m.WatchKeyring(kr); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}

	// The body budget and the Go soft limit follow the container's memory limit.
	gomemlimit := os.Getenv("GOMEMLIMIT")
	mem := sizeMemory(cfg.ExtProc, memlimit.CgroupRoot, gomemlimit)
	mem.apply(log, gomemlimit)
	ext, err := extproc.NewServer(cfg.Policies, keysource.Keyring{K: kr}, extproc.Options{
		Logger:       log,
		MaxBodyBytes: int(cfg.ExtProc.MaxBodyBytes),
		KeyTimeout:   cfg.ExtProc.KeyTimeout,
		Observer:     m,

		MaxFields:            cfg.ExtProc.MaxFields,
		MaxConcurrentStreams: cfg.ExtProc.MaxConcurrentStreams,
		MaxStreamsPerClient:  cfg.ExtProc.MaxStreamsPerClient,
		MaxStreamsPerTenant:  cfg.ExtProc.MaxStreamsPerTenant,
		StreamTimeout:        cfg.ExtProc.StreamTimeout,
		IdleTimeout:          cfg.ExtProc.IdleTimeout,
		FirstMessageTimeout:  cfg.ExtProc.FirstMessageTimeout,
		MemoryBudget:         mem.budget,
		TrustRequestID:       cfg.ExtProc.TrustRequestID,
	})
	if err != nil {
		return fmt.Errorf("ext_proc: %w", err)
	}
	if err := m.WatchExtProc(ext); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	for _, w := range policy.Warnings(cfg.Policies) {
		log.Warn("policy", "warning", w)
	}
	// One key service behind both APIs (one failed-login throttle: a token guessed through one
	// is guessed for both). /readyz and the gRPC health check report ready once the cache
	// warm-up is done.
	warm := newWarmup(cfg, kr, log)
	keys, err := keyservice.New(readyKeyring{kr, warm}, keyservice.Options{Token: token, Logger: log, Audit: auditLog,
		OnAuthFailure: m.AdminAuthFailure})
	if err != nil {
		return err
	}
	adminHandler, err := admin.New(keys, admin.Options{})
	if err != nil {
		return err
	}
	keySvc, err := keyapi.New(keys)
	if err != nil {
		return err
	}
	// /metrics needs no token: it carries no key material and no key ids.
	adminMux := http.NewServeMux()
	adminMux.Handle("/metrics", m.Handler())
	adminMux.Handle("/", adminHandler)

	sec, err := buildSecurity(cfg, log)
	if err != nil {
		return err
	}
	grpcLis, err := net.Listen("tcp", cfg.ExtProc.Listen)
	if err != nil {
		return fmt.Errorf("ext_proc listener: %w", err)
	}
	adminLis, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		grpcLis.Close()
		return fmt.Errorf("admin listener: %w", err)
	}
	var keyLis net.Listener
	if cfg.Admin.GRPCListen != "" {
		if keyLis, err = net.Listen("tcp", cfg.Admin.GRPCListen); err != nil {
			grpcLis.Close()
			adminLis.Close()
			return fmt.Errorf("admin grpc listener: %w", err)
		}
	}

	// Envoy sends a buffered body as one message: the server sizes gRPC's limits to the body limit.
	gs := grpc.NewServer(append(ext.GRPCServerOptions(), sec.extproc...)...)
	ext.Register(gs)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)

	hsrv := &http.Server{Handler: adminMux, ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute,
		MaxHeaderBytes: adminMaxHeaderBytes, TLSConfig: sec.adminHTTP,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}

	// The key API has its own gRPC server: its listener may be exposed where ext_proc's is not.
	ks := grpc.NewServer(sec.keyAPI...)
	keySvc.Register(ks)
	reflection.Register(ks)

	errc := make(chan error, 3)
	go func() { errc <- gs.Serve(grpcLis) }()
	go func() {
		if hsrv.TLSConfig != nil {
			errc <- hsrv.ServeTLS(adminLis, "", "")
			return
		}
		errc <- hsrv.Serve(adminLis)
	}()
	keyAddr := "disabled"
	if keyLis != nil {
		keyAddr = keyLis.Addr().String()
		go func() { errc <- ks.Serve(keyLis) }()
	}

	warmDone := make(chan struct{})
	wctx, stopWarm := context.WithCancel(ctx)
	defer stopWarm()
	go func() {
		defer close(warmDone)
		warm.run(wctx, func() { hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING) })
	}()
	go warm.saveLoop(wctx)

	mode := "configured"
	if defaults {
		mode = "embedded defaults (local software KMS: NOT FOR PRODUCTION)"
	}
	fmt.Fprintf(stdout, "rkms %s serving (%s)\n  admin API: %s://%s (token in %s; metrics at /metrics)\n  key API:   %s (gRPC%s)\n  ext_proc:  %s (gRPC%s)\n",
		Version, mode, sec.scheme(), adminLis.Addr(), tokenSource(cfg), keyAddr, tlsNote(cfg.Admin.TLS), grpcLis.Addr(), tlsNote(cfg.ExtProc.TLS))
	log.Info("rkms started", "admin", adminLis.Addr().String(), "key_api", keyAddr, "extproc", grpcLis.Addr().String(),
		"kms_provider", cfg.KMS.Provider, "regions", len(regions), "store", cfg.Store.Type, "policies", len(cfg.Policies))

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	log.Info("rkms stopping")
	hs.Shutdown()
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	_ = hsrv.Shutdown(sctx)
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); ks.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-sctx.Done():
		gs.Stop()
		ks.Stop()
	}
	stopWarm()
	<-warmDone
	warm.save()
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) && !errors.Is(serveErr, grpc.ErrServerStopped) {
		return serveErr
	}
	return nil
}

func tokenSource(cfg *config.Config) string {
	if config.EnvAdminToken() != "" {
		return "$" + config.AdminTokenEnv
	}
	return cfg.Admin.TokenFile
}
