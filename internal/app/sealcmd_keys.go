package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/extproc"
	"github.com/rkms/rkms/internal/config"
	"github.com/rkms/rkms/internal/keysource"
	"github.com/rkms/rkms/internal/metrics"
	"github.com/rkms/rkms/secret"
	"github.com/rkms/rkms/store/embedded"
)

// keyFlags say where rkms seal and rkms open take their keys: a running rkms's admin API
// (--server) or the configured keyring.
type keyFlags struct {
	server    string
	tokenFile string
	caFile    string
	certFile  string
	keyFile   string
}

func (k *keyFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&k.server, "server", "", "admin API of a running rkms (http://127.0.0.1:8080): keys from GET /key?id=...")
	fs.StringVar(&k.tokenFile, "token-file", "", "admin token file for --server (default: $RKMS_ADMIN_TOKEN, else the config's admin.token_file)")
	fs.StringVar(&k.caFile, "ca-file", "", "CA certificates (PEM) that verify an https --server")
	fs.StringVar(&k.certFile, "cert-file", "", "client certificate (PEM) for an https --server that requires one")
	fs.StringVar(&k.keyFile, "key-file", "", "client certificate key (PEM)")
}

// open returns the key source and the function that releases it. Without --server it opens
// the KMS regions, the store and the keyring of cfg as rkms serve does (configured says cfg
// came from --config).
func (k *keyFlags) open(ctx context.Context, cfg *config.Config, configured bool, stderr io.Writer) (extproc.Keys, func(), error) {
	if k.server != "" {
		sk, err := k.serverKeys(cfg)
		if err != nil {
			return nil, nil, err
		}
		return sk, func() {}, nil
	}
	if cfg.Store.Type == "memory" {
		return nil, nil, errors.New("the configured store is memory: its keys live in the running rkms only; use --server URL")
	}
	ks, err := openKeys(ctx, cfg, cliLogger(stderr), metrics.New())
	if errors.Is(err, embedded.ErrLocked) {
		src := "the embedded defaults"
		if configured {
			src = "the configuration"
		}
		return nil, nil, fmt.Errorf("%w\n  a running rkms holds the key store of %s: take the keys from it with --server %s (token from $%s or --token-file)",
			err, src, adminURL(cfg), config.AdminTokenEnv)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("open the keyring: %w", err)
	}
	return keysource.Keyring{K: ks.kr}, ks.close, nil
}

// adminURL is the URL of cfg's admin API, for messages.
func adminURL(cfg *config.Config) string {
	scheme := "http"
	if cfg.Admin.TLS.CertFile != "" {
		scheme = "https"
	}
	return scheme + "://" + cfg.Admin.Listen
}

// serverKeys makes the admin API key source: the token from $RKMS_ADMIN_TOKEN, --token-file
// or the configuration's token file, read by the rule rkms serve reads it with.
func (k *keyFlags) serverKeys(cfg *config.Config) (*serverKeys, error) {
	base, err := url.Parse(strings.TrimSuffix(k.server, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("--server: %q is not an http:// or https:// URL", k.server)
	}
	path := k.tokenFile
	if path == "" {
		path = cfg.Admin.TokenFile
	}
	if config.EnvAdminToken() == "" {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("no admin token for --server: set $%s or --token-file (%w)", config.AdminTokenEnv, err)
		}
	}
	token, _, err := adminToken(path) // the file exists: adminToken reads it, never generates
	if err != nil {
		return nil, err
	}
	tc, err := k.tlsConfig()
	if err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: 30 * time.Second}
	if tc != nil {
		client.Transport = &http.Transport{TLSClientConfig: tc, Proxy: http.ProxyFromEnvironment}
	}
	return &serverKeys{base: base, token: token, client: client}, nil
}

func (k *keyFlags) tlsConfig() (*tls.Config, error) {
	if k.caFile == "" && k.certFile == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if k.caFile != "" {
		pem, err := os.ReadFile(k.caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-file %s: no PEM certificate", k.caFile)
		}
	}
	if k.certFile != "" {
		c, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
		if err != nil {
			return nil, fmt.Errorf("--cert-file: %w", err)
		}
		tc.Certificates = []tls.Certificate{c}
	}
	return tc, nil
}

// serverKeys serves extproc.Keys from the admin API of a running rkms.
//
// Current is GET /key?id=ID, which creates a missing key as a request under an on_demand
// policy would. Lookup and Version add create=false (and version=N): a server whose admin API
// answers with another version than asked is refused, never used.
type serverKeys struct {
	base   *url.URL
	token  string
	client *http.Client

	mu       sync.Mutex
	seals    map[sealKey]int64         // seals reserved on the server and not used yet (-1: none may be)
	inflight map[sealKey]chan struct{} // a reservation under way, closed when it ends
}

// sealKey is one version of one key.
type sealKey struct {
	id string
	v  uint32
}

var (
	_ extproc.Keys        = (*serverKeys)(nil)
	_ extproc.SealCounter = (*serverKeys)(nil)
)

// sealAhead is how many seals serverKeys asks the server for at once (it grants at most one
// reservation block of its keyring's): one request per thousand values sealed.
const sealAhead = 1000

// ReserveSeals counts the values sealed here against the server's seal limit of the version
// (keyring.rotation.max_seals), as the server counts its own: POST /key/seals reserves them in
// the server's store, sealAhead at a time. When the version may seal no more it fails with
// extproc.ErrKeySealLimit, and the transform takes the current key again. Seals reserved and
// not used when the command ends are lost, which only brings the version's rotation closer.
func (s *serverKeys) ReserveSeals(ctx context.Context, id string, v uint32, n int) error {
	k := sealKey{id, v}
	for {
		s.mu.Lock()
		left, ch := s.seals[k], s.inflight[k]
		switch {
		case left < 0:
			s.mu.Unlock()
			return fmt.Errorf("%w: version %d of key %s may seal no more (the server rotates it)", extproc.ErrKeySealLimit, v, id)
		case left >= int64(n):
			s.seals[k] -= int64(n)
			s.mu.Unlock()
			return nil
		case ch != nil:
			// One request per key version at a time: parallel workers asking at once would
			// reserve (and waste) a block each.
			s.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return fmt.Errorf("%w: wait for a seal reservation: %w", extproc.ErrKeyUnavailable, ctx.Err())
			}
			continue
		}
		ch = make(chan struct{})
		if s.inflight == nil {
			s.inflight, s.seals = map[sealKey]chan struct{}{}, map[sealKey]int64{}
		}
		if len(s.seals) >= maxMemoKeys {
			// A run over millions of key ids: forget the others' unused seals (lost, as at the
			// end of a run) rather than grow without a bound.
			clear(s.seals)
		}
		s.inflight[k] = ch
		s.mu.Unlock()
		r, err := s.reserve(ctx, id, v, max(n, sealAhead))
		s.mu.Lock()
		delete(s.inflight, k)
		switch {
		case err != nil:
		case r.Limit:
			s.seals[k] = -1 // until the run ends: a rotated version does not come back
		case !r.Counted:
			s.seals[k] = math.MaxInt64 / 2 // the server counts no seals
		default:
			s.seals[k] += int64(r.Reserved)
		}
		close(ch)
		s.mu.Unlock()
		if err != nil {
			return err
		}
		if !r.Limit && !r.Counted && r.Reserved < 1 {
			return fmt.Errorf("%w: admin API %s reserved no seals", extproc.ErrKeyUnavailable, s.base.Host)
		}
	}
}

// sealsReply is the admin API's answer to POST /key/seals (internal/admin's sealsResponse).
type sealsReply struct {
	ID       string `json:"id"`
	Version  uint32 `json:"version"`
	Reserved int    `json:"reserved"`
	Limit    bool   `json:"limit"`
	Counted  bool   `json:"counted"`
	Error    string `json:"error"`
}

// reserve calls POST /key/seals?id=ID&version=V&count=N.
func (s *serverKeys) reserve(ctx context.Context, id string, v uint32, n int) (sealsReply, error) {
	u := *s.base
	u.Path += "/key/seals"
	u.RawQuery = url.Values{"id": {id}, "version": {strconv.FormatUint(uint64(v), 10)}, "count": {strconv.Itoa(n)}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	if err != nil {
		return sealsReply{}, fmt.Errorf("admin API request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := s.client.Do(req)
	if err != nil {
		return sealsReply{}, fmt.Errorf("%w: admin API: %w", extproc.ErrKeyUnavailable, err)
	}
	defer resp.Body.Close()
	var r sealsReply
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err == nil {
		err = json.Unmarshal(body, &r)
	}
	if resp.StatusCode != http.StatusOK {
		return sealsReply{}, s.statusError(resp.StatusCode, r.Error)
	}
	if err != nil || r.ID != id || r.Version != v || r.Reserved > n {
		return sealsReply{}, fmt.Errorf("%w: admin API answer to POST /key/seals: not a reservation of what was asked", extproc.ErrKeyUnavailable)
	}
	return r, nil
}

// errKeyDeleted marks an admin API answer 410: the id was deleted, and is not re-created.
var errKeyDeleted = errors.New("key id deleted")

func (s *serverKeys) Current(ctx context.Context, id string) (envelope.Key, error) {
	k, err := s.get(ctx, id, nil)
	if errors.Is(err, errKeyDeleted) {
		return envelope.Key{}, fmt.Errorf("%w: %w", extproc.ErrKeyUnknown, err)
	}
	return k, err
}

func (s *serverKeys) Lookup(ctx context.Context, id string) (envelope.Key, error) {
	k, err := s.get(ctx, id, url.Values{"create": {"false"}})
	if errors.Is(err, extproc.ErrKeyNotFound) {
		return envelope.Key{}, fmt.Errorf("%w: %w", extproc.ErrKeyUnknown, err)
	}
	return k, err
}

func (s *serverKeys) Version(ctx context.Context, id string, v uint32) (envelope.Key, error) {
	k, err := s.get(ctx, id, url.Values{"create": {"false"}, "version": {strconv.FormatUint(uint64(v), 10)}})
	if err != nil {
		return envelope.Key{}, err
	}
	if k.Version != v {
		k.Secret.Wipe()
		return envelope.Key{}, fmt.Errorf("%w: %s answered version %d of key %s for version %d: it does not serve older versions, open this ciphertext without --server",
			extproc.ErrKeyUnavailable, s.base.Host, k.Version, id, v)
	}
	return k, nil
}

// keyReply is the admin API's answer to GET /key (internal/admin's keyResponse), or its error.
type keyReply struct {
	ID      string `json:"id"`
	Key     string `json:"key"`
	Version uint32 `json:"version"`
	Error   string `json:"error"`
}

// get calls GET /key?id=ID&extra and returns the key. Errors are classed as extproc.Keys
// errors (so that a ciphertext under a missing key fails as "authentication failed"); they
// name the status and the server's message, never the key.
func (s *serverKeys) get(ctx context.Context, id string, extra url.Values) (envelope.Key, error) {
	q := url.Values{"id": {id}}
	for k, v := range extra {
		q[k] = v
	}
	u := *s.base
	u.Path += "/key"
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return envelope.Key{}, fmt.Errorf("admin API request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := s.client.Do(req)
	if err != nil {
		return envelope.Key{}, fmt.Errorf("%w: admin API: %w", extproc.ErrKeyUnavailable, err)
	}
	defer resp.Body.Close()
	var r keyReply
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err == nil {
		err = json.Unmarshal(body, &r)
	}
	clear(body)
	if resp.StatusCode != http.StatusOK {
		return envelope.Key{}, s.statusError(resp.StatusCode, r.Error)
	}
	if err != nil {
		return envelope.Key{}, fmt.Errorf("admin API answer to GET /key: %w", err)
	}
	raw, err := base64.StdEncoding.DecodeString(r.Key)
	r.Key = ""
	if err != nil || len(raw) != envelope.DataKeyLen || r.ID != id {
		clear(raw)
		return envelope.Key{}, fmt.Errorf("admin API answer to GET /key: not a %d-byte key for the id asked", envelope.DataKeyLen)
	}
	return envelope.Key{ID: id, Version: r.Version, Secret: secret.New(raw)}, nil
}

// statusError classes an admin API refusal.
func (s *serverKeys) statusError(code int, msg string) error {
	err := fmt.Errorf("admin API %s: %d %s", s.base.Host, code, msg)
	switch code {
	case http.StatusNotFound:
		return fmt.Errorf("%w: %w", extproc.ErrKeyNotFound, err)
	case http.StatusGone: // a deleted id: its ciphertexts fail as any that do not open
		return fmt.Errorf("%w: %w: %w", extproc.ErrKeyNotFound, errKeyDeleted, err)
	case http.StatusTooManyRequests:
		return &extproc.CreateLimitedError{RetryAfter: time.Second, Err: err}
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("%w (check $%s or --token-file)", err, config.AdminTokenEnv)
	}
	return fmt.Errorf("%w: %w", extproc.ErrKeyUnavailable, err)
}

// cliLogger is the logger of the keyring a command opens: audit records (a key created by the
// command, recorded as rkms serve records it) and errors, as text on stderr. The keyring's other
// messages (the software KMS notice at every start) are not the command's output.
func cliLogger(stderr io.Writer) *slog.Logger {
	return slog.New(cliLogHandler{Handler: slog.NewTextHandler(stderr, nil)})
}

// cliLogHandler passes the records of loggers with the attribute logger=audit (internal/audit)
// at their level, and other records from error level up.
type cliLogHandler struct {
	slog.Handler
	audit bool
}

func (h cliLogHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return (h.audit || l >= slog.LevelError) && h.Handler.Enabled(ctx, l)
}

func (h cliLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	audit := h.audit
	for _, a := range as {
		audit = audit || (a.Key == "logger" && a.Value.String() == "audit")
	}
	return cliLogHandler{Handler: h.Handler.WithAttrs(as), audit: audit}
}

func (h cliLogHandler) WithGroup(name string) slog.Handler {
	return cliLogHandler{Handler: h.Handler.WithGroup(name), audit: h.audit}
}
