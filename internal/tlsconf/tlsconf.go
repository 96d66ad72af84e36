package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// DefaultCheckInterval is how often, at most, handshakes look for changed files.
const DefaultCheckInterval = 5 * time.Second

// Files names the PEM files of one listener. CertFile and KeyFile are required; ClientCAFile,
// when set, makes client certificates mandatory (mutual TLS).
type Files struct {
	CertFile     string
	KeyFile      string
	ClientCAFile string
}

// Enabled reports whether any file is named (TLS is wanted).
func (f Files) Enabled() bool { return f.CertFile != "" || f.KeyFile != "" || f.ClientCAFile != "" }

// MutualTLS reports whether client certificates are required.
func (f Files) MutualTLS() bool { return f.ClientCAFile != "" }

// Options tune [New].
type Options struct {
	// NextProtos is the ALPN list offered: []string{"h2"} for gRPC, []string{"h2", "http/1.1"}
	// for the admin HTTP server.
	NextProtos []string
	// CheckInterval bounds how often the files are looked at for changes. 0: DefaultCheckInterval;
	// negative: never reload.
	CheckInterval time.Duration
	// Logger receives reload events. Nil: discard.
	Logger *slog.Logger
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
}

// ErrFiles is wrapped by every error about the files themselves (missing, unreadable, not PEM,
// key not matching the certificate, no CA certificate).
var ErrFiles = errors.New("tls files")

// Check loads and parses f as [New] would, without serving.
func Check(f Files) error {
	_, err := load(f)
	return err
}

// loaded is one consistent snapshot of the files, as a ready tls.Config.
type loaded struct {
	cfg   *tls.Config
	stamp [3]fileStamp
}

type fileStamp struct {
	mod  time.Time
	size int64
}

// load reads f and returns its certificate, its client CA pool (nil without a CA file) and the
// stamps of the files read.
func load(f Files) (*loaded, error) {
	if f.CertFile == "" || f.KeyFile == "" {
		return nil, fmt.Errorf("%w: cert_file and key_file are both required", ErrFiles)
	}
	var l loaded
	var err error
	// Stamps first: a file replaced while being read is seen as changed on the next check.
	for i, p := range []string{f.CertFile, f.KeyFile, f.ClientCAFile} {
		if p == "" {
			continue
		}
		if l.stamp[i], err = stamp(p); err != nil {
			return nil, err
		}
	}
	cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: load certificate %s and key %s: %w", ErrFiles, f.CertFile, f.KeyFile, err)
	}
	if cert.Leaf == nil || cert.Leaf.NotAfter.Before(time.Now()) {
		return nil, fmt.Errorf("%w: certificate %s has expired", ErrFiles, f.CertFile)
	}
	l.cfg = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if f.ClientCAFile != "" {
		pem, err := os.ReadFile(f.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: read client CA file: %w", ErrFiles, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: client CA file %s holds no PEM certificate", ErrFiles, f.ClientCAFile)
		}
		l.cfg.ClientCAs = pool
		l.cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return &l, nil
}

func (s fileStamp) equal(o fileStamp) bool { return s.size == o.size && s.mod.Equal(o.mod) }

func stamp(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, fmt.Errorf("%w: %w", ErrFiles, err)
	}
	if !fi.Mode().IsRegular() {
		return fileStamp{}, fmt.Errorf("%w: %s is not a regular file", ErrFiles, path)
	}
	return fileStamp{mod: fi.ModTime(), size: fi.Size()}, nil
}

// reloader serves the current snapshot and replaces it when the files change.
type reloader struct {
	files Files
	opts  Options
	log   *slog.Logger

	mu      sync.Mutex
	cur     *loaded
	checked time.Time
}

// New loads f and returns a server tls.Config that serves it, reloading changed files. The files
// must be valid now (errors wrap [ErrFiles]).
func New(f Files, opts Options) (*tls.Config, error) {
	l, err := load(f)
	if err != nil {
		return nil, err
	}
	if opts.CheckInterval == 0 {
		opts.CheckInterval = DefaultCheckInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &reloader{files: f, opts: opts, log: opts.Logger, cur: l, checked: opts.Now()}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.finish(l)
	// The outer config is what callers see (and what grpc's credentials clone); every handshake
	// is answered with the current snapshot through GetConfigForClient.
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		NextProtos:         opts.NextProtos,
		GetConfigForClient: r.configForClient,
	}, nil
}

// finish completes a snapshot's config with the settings that do not come from the files.
func (r *reloader) finish(l *loaded) {
	l.cfg.NextProtos = r.opts.NextProtos
}

func (r *reloader) configForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	return r.current().cfg, nil
}

// current returns the snapshot to serve, reloading first when the check interval has passed and
// a file changed.
func (r *reloader) current() *loaded {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.opts.Now()
	if r.opts.CheckInterval < 0 || now.Sub(r.checked) < r.opts.CheckInterval {
		return r.cur
	}
	r.checked = now
	if !r.changed() {
		return r.cur
	}
	l, err := load(r.files)
	if err != nil {
		r.log.Warn("tls files changed but cannot be loaded: keeping the previous certificates", "cert_file", r.files.CertFile, "error", err)
		return r.cur
	}
	r.finish(l)
	r.cur = l
	r.log.Info("tls certificates reloaded", "cert_file", r.files.CertFile, "client_ca_file", r.files.ClientCAFile)
	return r.cur
}

func (r *reloader) changed() bool {
	for i, p := range []string{r.files.CertFile, r.files.KeyFile, r.files.ClientCAFile} {
		if p == "" {
			continue
		}
		s, err := stamp(p)
		if err != nil || !s.equal(r.cur.stamp[i]) {
			return true
		}
	}
	return false
}
