package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rkms/rkms/internal/audit"
	"github.com/rkms/rkms/internal/authlimit"
	"github.com/rkms/rkms/keyring"
)

// MaxHeaderBytes bounds a request's line and headers: 431 above it. net/http's own
// Server.MaxHeaderBytes lets several KiB more through (it reads in buffered chunks), so the
// handler counts them itself: request line, names, values and their separators.
const MaxHeaderBytes = 16 << 10

// DefaultMaxBodyBytes bounds request bodies: no endpoint reads one, so anything larger is refused
// with 413 before a handler runs.
const DefaultMaxBodyBytes = 64 << 10

// Keys is what the admin API needs from the keyring.
type Keys interface {
	// Get returns the current version of id, creating the key if absent (within the keyring's
	// creation rate limit: keyring.ErrCreateLimited).
	Get(ctx context.Context, id string) (keyring.DataKey, error)
	// Rotate adds a version and returns its number.
	Rotate(ctx context.Context, id string) (uint32, error)
	// Delete removes every version of id (keyring.ErrNotFound when absent).
	Delete(ctx context.Context, id string) error
	// Ready reports whether keys can be served now.
	Ready(ctx context.Context) error
}

// Options configures the handler.
type Options struct {
	// Token is the bearer token every /key call must present. It must not be empty.
	Token string
	// Logger receives operational events; audit records go to Audit. Nil: discard.
	Logger *slog.Logger
	// Audit receives one record per key operation, refused ones included (never key material).
	// Nil: audit.New(Logger).
	Audit *audit.Logger
	// MaxBodyBytes bounds request bodies (413 above it). 0: DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Timeout bounds each key operation (default 5s).
	Timeout time.Duration
	// OnAuthFailure, if not nil, is told of each failed authentication; throttled says the
	// request was refused with 429 because its address failed too often (for metrics).
	OnAuthFailure func(throttled bool)
	// Throttle counts failed authentications per address (shared with the key API). Nil: a
	// throttle of the handler's own.
	Throttle *authlimit.Throttle
}

// Handler is the admin API.
type Handler struct {
	keys    Keys
	token   [sha256.Size]byte
	log     *slog.Logger
	audit   *audit.Logger
	timeout time.Duration
	maxBody int64
	mux     *http.ServeMux
	limiter *authlimit.Throttle
	onFail  func(throttled bool)
}

var _ http.Handler = (*Handler)(nil)

// New returns the admin API over keys.
func New(keys Keys, opts Options) (*Handler, error) {
	if opts.Token == "" {
		return nil, errors.New("admin: empty token")
	}
	h := &Handler{keys: keys, token: sha256.Sum256([]byte(opts.Token)), log: opts.Logger, audit: opts.Audit,
		timeout: opts.Timeout, maxBody: opts.MaxBodyBytes, limiter: opts.Throttle, onFail: opts.OnAuthFailure}
	if h.limiter == nil {
		h.limiter = authlimit.New(nil)
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.audit == nil {
		h.audit = audit.New(h.log)
	}
	if h.timeout <= 0 {
		h.timeout = 5 * time.Second
	}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBodyBytes
	}
	m := http.NewServeMux()
	for _, prefix := range []string{"", "/api/v1"} {
		m.HandleFunc(prefix+"/key", h.auth(keyOp, h.key))
		m.HandleFunc(prefix+"/key/rotate", h.auth(rotateOp, h.rotate))
	}
	m.HandleFunc("/healthz", h.healthz)
	m.HandleFunc("/readyz", h.readyz)
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not found")
	})
	h.mux = m
	return h, nil
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if headerBytes(r) > MaxHeaderBytes {
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusRequestHeaderFieldsTooLarge, "request headers too large")
		return
	}
	if r.ContentLength > h.maxBody || (r.ContentLength < 0 && bodyOver(r.Body, h.maxBody)) {
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusRequestEntityTooLarge, "request body too large")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, h.maxBody)
	h.mux.ServeHTTP(w, r)
}

// headerBytes is the size of r's request line and headers as sent (HTTP/1.1 framing).
func headerBytes(r *http.Request) int {
	n := len(r.Method) + len(r.RequestURI) + len(r.Proto) + 4
	if r.Host != "" {
		n += len("Host: ") + len(r.Host) + 2
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + 2 + len(v) + 2
		}
	}
	return n
}

// bodyOver reads a body of undeclared length (chunked) up to max+1 bytes and reports whether it
// is longer than max. No endpoint reads a body, so what is read is dropped; the limit holds
// whether or not the client declared a length.
func bodyOver(body io.Reader, max int64) bool {
	n, _ := io.Copy(io.Discard, io.LimitReader(body, max+1))
	return n > max
}

// keyOp and rotateOp name the audited operation of a /key or /key/rotate request (empty: the
// method is not allowed, nothing to audit).
func keyOp(r *http.Request) string {
	switch r.Method {
	case http.MethodGet:
		return audit.OpRead
	case http.MethodDelete:
		return audit.OpDelete
	}
	return ""
}

func rotateOp(r *http.Request) string {
	if r.Method == http.MethodPost {
		return audit.OpRotate
	}
	return ""
}

// auth puts the caller into the request context for audit records and checks the bearer token
// in constant time (both sides are hashed to a fixed length first, so neither the length nor the
// content of the token leaks through timing). A refused call is audited as denied.
func (h *Handler) auth(op func(*http.Request) string, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		remote, subject := audit.PeerFromHTTP(r)
		r = r.WithContext(audit.WithWho(r.Context(), audit.Who{API: audit.APIHTTP, Remote: remote, Subject: subject}))
		if blocked, left := h.limiter.Blocked(r.RemoteAddr); blocked {
			if h.onFail != nil {
				h.onFail(true)
			}
			w.Header().Set("Retry-After", strconv.Itoa(int(left.Seconds())+1))
			writeError(w, http.StatusTooManyRequests, "too many failed authentications from this address")
			return
		}
		const scheme = "bearer "
		a := r.Header.Get("Authorization")
		ok := len(a) > len(scheme) && strings.EqualFold(a[:len(scheme)], scheme)
		got := sha256.Sum256([]byte(strings.TrimSpace(a[min(len(a), len(scheme)):])))
		if subtle.ConstantTimeCompare(got[:], h.token[:]) != 1 || !ok {
			if o := op(r); o != "" {
				h.audit.Record(r.Context(), o, r.URL.Query().Get("id"), 0, audit.ErrDenied)
			}
			h.limiter.Fail(r.RemoteAddr)
			if h.onFail != nil {
				h.onFail(false)
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="rkms"`)
			writeError(w, http.StatusUnauthorized, "missing or invalid bearer token")
			return
		}
		next(w, r)
	}
}

type keyResponse struct {
	ID      string `json:"id"`
	Key     string `json:"key,omitempty"`
	Version uint32 `json:"version"`
}

func (h *Handler) key(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodDelete:
	default:
		w.Header().Set("Allow", "GET, DELETE")
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	id, ok := h.id(w, r, keyOp(r))
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	if r.Method == http.MethodDelete {
		err := h.keys.Delete(ctx, id)
		h.audit.Record(ctx, audit.OpDelete, id, 0, err)
		if err != nil {
			h.fail(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	dk, err := h.keys.Get(ctx, id)
	h.audit.Record(ctx, audit.OpRead, id, dk.Version, err)
	if err != nil {
		h.fail(w, err)
		return
	}
	resp := keyResponse{ID: dk.ID, Version: dk.Version}
	if err := dk.Secret.Use(func(b []byte) error {
		resp.Key = base64.StdEncoding.EncodeToString(b)
		return nil
	}); err != nil {
		// The key was evicted and wiped between Get and here: a transient condition.
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (h *Handler) rotate(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	id, ok := h.id(w, r, audit.OpRotate)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	v, err := h.keys.Rotate(ctx, id)
	h.audit.Record(ctx, audit.OpRotate, id, v, err)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, keyResponse{ID: id, Version: v})
}

// id returns the one valid key id of r; otherwise it answers 400 and audits op as invalid.
func (h *Handler) id(w http.ResponseWriter, r *http.Request, op string) (string, bool) {
	q := r.URL.Query()
	ids := q["id"]
	if len(ids) != 1 {
		h.audit.Record(r.Context(), op, "", 0, fmt.Errorf("%d id query parameters: %w", len(ids), keyring.ErrInvalidID))
		writeError(w, http.StatusBadRequest, "exactly one id query parameter is required")
		return "", false
	}
	if err := keyring.ValidateID(ids[0]); err != nil {
		h.audit.Record(r.Context(), op, "", 0, err)
		writeError(w, http.StatusBadRequest, "invalid key id: 1 to 256 characters of A-Z a-z 0-9 . _ : / @ + = -")
		return "", false
	}
	return ids[0], true
}

func (h *Handler) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (h *Handler) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := h.keys.Ready(ctx); err != nil {
		h.log.Warn("not ready", "err", err)
		writeError(w, http.StatusServiceUnavailable, "not ready")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// fail maps a keyring error to a status; the client sees a fixed message per class.
func (h *Handler) fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, keyring.ErrInvalidID):
		writeError(w, http.StatusBadRequest, "invalid key id")
	case errors.Is(err, keyring.ErrNotFound):
		writeError(w, http.StatusNotFound, "key not found")
	case errors.Is(err, keyring.ErrCreateLimited):
		retry := time.Second
		if cle := (*keyring.CreateLimitedError)(nil); errors.As(err, &cle) {
			retry = max(retry, cle.RetryAfter)
		}
		w.Header().Set("Retry-After", strconv.Itoa(int(retry/time.Second)))
		writeError(w, http.StatusTooManyRequests, "key creation rate limit reached (kms.create_rate): retry later")
	case errors.Is(err, keyring.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusServiceUnavailable, "key service unavailable: too few KMS regions or store unreachable")
	default:
		h.log.Error("admin key operation failed", "err", err)
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
