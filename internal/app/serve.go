package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"google.golang.org/grpc"

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
	"github.com/rkms/rkms/store"
)

// shutdownGrace bounds how long in-flight requests may finish after a stop signal.
const shutdownGrace = 10 * time.Second

// Serve runs rkms with cfg until ctx ends. defaults says cfg is the embedded default (it changes
// only what is printed at start).
//
// The steps, each a function below: the admin token, the key service (KMS regions, store,
// keyring), the ext_proc server, the admin and key APIs, the listeners, the servers on them and
// the cache warm-up; then it waits for ctx or a failing server and shuts down within
// shutdownGrace.
func Serve(ctx context.Context, cfg *config.Config, defaults bool, stdout, stderr io.Writer) error {
	log := newLogger(cfg.Log, stderr)
	auth, err := loadAdminAuth(cfg, stdout)
	if err != nil {
		return err
	}
	// Metrics decorate the regions and the store; the keyring itself is read at scrape time.
	m := metrics.New()
	keys, err := openKeys(ctx, cfg, log, m)
	if err != nil {
		return err
	}
	defer keys.close()
	ext, err := buildExtProc(cfg, keys.kr, log, m, revealAuditor{keys.audit})
	if err != nil {
		return err
	}
	defer ext.Close() // the slow-stream flight recorder, after the servers have stopped
	// /readyz and the gRPC health check report ready once the cache warm-up is done.
	warm := newWarmup(cfg, keys.kr, log)
	apis, err := buildAPIs(keys, warm, auth, log, m)
	if err != nil {
		return err
	}
	sec, err := buildSecurity(cfg, log)
	if err != nil {
		return err
	}
	lis, err := listen(cfg)
	if err != nil {
		return err
	}
	srv := newServers(ext, apis, sec, log)
	errc := srv.start(lis)
	stopWarm := startWarmup(ctx, warm, srv.ready)
	printStarted(stdout, log, cfg, defaults, sec, lis, keys.regions)

	serveErr := waitStop(ctx, errc)
	log.Info("rkms stopping")
	srv.shutdown()
	stopWarm()
	warm.save()
	return serveResult(serveErr)
}

// loadAdminAuth returns the credentials of the admin and key APIs: admin.credentials with their
// tokens read, or, without any, the single admin token (read, or generated saying so on stdout).
func loadAdminAuth(cfg *config.Config, stdout io.Writer) (keyservice.Options, error) {
	if creds := cfg.Admin.Credentials; len(creds) > 0 {
		return adminCredentials(creds)
	}
	token, generated, err := adminToken(cfg.Admin.TokenFile)
	if err != nil {
		return keyservice.Options{}, err
	}
	if generated {
		fmt.Fprintf(stdout, "rkms: generated admin token in %s\n", cfg.Admin.TokenFile)
	}
	return keyservice.Options{Token: token}, nil
}

// keyService is the key side of rkms: the store and the keyring over the KMS regions.
type keyService struct {
	st      store.Store
	kr      *keyring.Keyring
	audit   *audit.Logger
	regions int
}

// openKeys opens the KMS regions and the store, both measured by m, and the keyring over them.
func openKeys(ctx context.Context, cfg *config.Config, log *slog.Logger, m *metrics.Metrics) (*keyService, error) {
	regions, err := buildRegions(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	for i := range regions {
		regions[i] = m.WrapRegion(regions[i])
	}
	tenants, err := buildTenants(ctx, cfg, log, m.WrapRegion)
	if err != nil {
		return nil, err
	}
	st, err := buildStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	// Key creation is audited where the record is first written, whichever API caused it.
	auditLog := audit.New(log, extprocCaller)
	kopts := keyringOptions(cfg, log)
	kopts.Tenants = tenants
	kr, err := keyring.New(auditLog.WrapStore(m.WrapStore(st)), regions, kopts)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("keyring: %w", err)
	}
	k := &keyService{st: st, kr: kr, audit: auditLog, regions: len(regions)}
	if err := m.WatchKeyring(kr); err != nil {
		k.close()
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return k, nil
}

// close stops the keyring, then closes the store under it.
func (k *keyService) close() {
	k.kr.Close()
	k.st.Close()
}

// buildExtProc sizes the memory budget and makes the ext_proc server with the policies compiled
// by the config loader.
func buildExtProc(cfg *config.Config, kr *keyring.Keyring, log *slog.Logger, m *metrics.Metrics, aud extproc.RevealAuditor) (*extproc.Server, error) {
	// The body budget and the Go soft limit follow the container's memory limit.
	gomemlimit := os.Getenv("GOMEMLIMIT")
	mem := sizeMemory(cfg.ExtProc, memlimit.CgroupRoot, gomemlimit)
	mem.apply(log, gomemlimit)
	policies, err := cfg.PolicySet()
	if err != nil {
		return nil, fmt.Errorf("ext_proc: %w", err)
	}
	opts := extprocOptions(cfg, log, m, mem.budget)
	opts.RevealAuditor = aud
	ext, err := extproc.NewServerFromSet(policies, keysource.Keyring{K: kr}, opts)
	if err != nil {
		return nil, fmt.Errorf("ext_proc: %w", err)
	}
	if err := m.WatchExtProc(ext); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	for _, w := range policy.Warnings(cfg.Policies) {
		log.Warn("policy", "warning", w)
	}
	return ext, nil
}

// apis are the admin HTTP API (with /metrics) and the gRPC key API.
type apis struct {
	admin  http.Handler
	keySvc *keyapi.Server
}

// buildAPIs makes the admin HTTP API and the gRPC key API: thin transports over one key service
// (one failed-login throttle: a token guessed through one is guessed for both).
func buildAPIs(keys *keyService, warm *warmup, auth keyservice.Options, log *slog.Logger, m *metrics.Metrics) (*apis, error) {
	svc, err := keyservice.New(readyKeyring{keys.kr, warm}, keyservice.Options{Token: auth.Token, Credentials: auth.Credentials,
		Logger: log, Audit: keys.audit, OnAuthFailure: m.AdminAuthFailure, OnForbidden: m.AdminForbidden,
		OnRewrap: m.RewrapItems})
	if err != nil {
		return nil, err
	}
	adminHandler, err := admin.New(svc, admin.Options{})
	if err != nil {
		return nil, err
	}
	keySvc, err := keyapi.New(svc)
	if err != nil {
		return nil, err
	}
	// /metrics needs no token: it carries no key material and no key ids.
	adminMux := http.NewServeMux()
	adminMux.Handle("/metrics", m.Handler())
	adminMux.Handle("/", adminHandler)
	return &apis{admin: adminMux, keySvc: keySvc}, nil
}

// startWarmup warms the cache in the background (then calls ready) and saves the recent key
// ids periodically. The function it returns stops both and waits for the warm-up to end.
func startWarmup(ctx context.Context, warm *warmup, ready func()) (stop func()) {
	warmDone := make(chan struct{})
	wctx, cancel := context.WithCancel(ctx)
	go func() {
		defer close(warmDone)
		warm.run(wctx, ready)
	}()
	go warm.saveLoop(wctx)
	return func() {
		cancel()
		<-warmDone
	}
}

// printStarted tells the operator where everything listens (stdout) and logs the start.
func printStarted(stdout io.Writer, log *slog.Logger, cfg *config.Config, defaults bool, sec *listenerSecurity, lis *listeners, regions int) {
	mode := "configured"
	if defaults {
		mode = "embedded defaults (local software KMS: NOT FOR PRODUCTION)"
	}
	keyAddr := lis.keyAPIAddr()
	fmt.Fprintf(stdout, "rkms %s serving (%s)\n  admin API: %s://%s (token in %s; metrics at /metrics)\n  key API:   %s (gRPC%s)\n  ext_proc:  %s (gRPC%s)\n",
		Version, mode, sec.scheme(), lis.admin.Addr(), tokenSource(cfg), keyAddr, tlsNote(cfg.Admin.TLS), lis.extproc.Addr(), tlsNote(cfg.ExtProc.TLS))
	log.Info("rkms started", "admin", lis.admin.Addr().String(), "key_api", keyAddr, "extproc", lis.extproc.Addr().String(),
		"kms_provider", cfg.KMS.Provider, "regions", regions, "store", cfg.Store.Type, "policies", len(cfg.Policies))
}

// waitStop waits until ctx ends (nil) or a server fails (its error).
func waitStop(ctx context.Context, errc <-chan error) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		return err
	}
}

// serveResult is what Serve returns for the error that ended serving: nil for a server closed
// by the shutdown.
func serveResult(err error) error {
	if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

func tokenSource(cfg *config.Config) string {
	if len(cfg.Admin.Credentials) > 0 {
		return credentialNames(cfg.Admin.Credentials)
	}
	if config.EnvAdminToken() != "" {
		return "$" + config.AdminTokenEnv
	}
	return cfg.Admin.TokenFile
}
