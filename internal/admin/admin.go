package admin

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/rkms/rkms/internal/audit"
	"github.com/rkms/rkms/internal/keyservice"
	"github.com/rkms/rkms/keyring"
)

// MaxHeaderBytes bounds a request's line and headers: 431 above it. net/http's own
// Server.MaxHeaderBytes lets several KiB more through (it reads in buffered chunks), so the
// handler counts them itself: request line, names, values and their separators.
const MaxHeaderBytes = 16 << 10

// DefaultMaxBodyBytes bounds request bodies: no endpoint reads one, so anything larger is refused
// with 413 before a handler runs.
const DefaultMaxBodyBytes = 64 << 10

// Options configures the handler.
type Options struct {
	// MaxBodyBytes bounds request bodies (413 above it). 0: DefaultMaxBodyBytes.
	MaxBodyBytes int64
}

// Handler is the admin API: an HTTP transport over a [keyservice.Service].
type Handler struct {
	svc     *keyservice.Service
	maxBody int64
	mux     *http.ServeMux
}

var _ http.Handler = (*Handler)(nil)

// New returns the admin API over svc.
func New(svc *keyservice.Service, opts Options) (*Handler, error) {
	if svc == nil {
		return nil, errors.New("admin: key service is required")
	}
	h := &Handler{svc: svc, maxBody: opts.MaxBodyBytes}
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

// auth authenticates the caller with the key service before any other check (a refusal is
// audited there when the method names a key operation).
func (h *Handler) auth(op func(*http.Request) string, next func(http.ResponseWriter, *http.Request, *keyservice.Session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		remote, subject := audit.PeerFromHTTP(r)
		c := keyservice.Caller{API: audit.APIHTTP, Remote: remote, Subject: subject, Identities: keyservice.TLSIdentities(r.TLS),
			Authorization: r.Header.Get("Authorization")}
		sess, err := h.svc.Authenticate(r.Context(), c, op(r), r.URL.Query().Get("id"))
		if err != nil {
			fail(w, err)
			return
		}
		next(w, r, sess)
	}
}

type keyResponse struct {
	ID      string `json:"id"`
	Key     string `json:"key,omitempty"`
	Version uint32 `json:"version"`
}

func (h *Handler) key(w http.ResponseWriter, r *http.Request, sess *keyservice.Session) {
	switch r.Method {
	case http.MethodGet, http.MethodDelete:
	default:
		w.Header().Set("Allow", "GET, DELETE")
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	id, err := queryID(r, sess, keyOp(r))
	if err != nil {
		fail(w, err)
		return
	}
	if r.Method == http.MethodDelete {
		if err := sess.Delete(r.Context(), id); err != nil {
			fail(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var resp keyResponse
	if err := sess.Get(r.Context(), id, func(id string, version uint32, key []byte) {
		resp = keyResponse{ID: id, Version: version, Key: base64.StdEncoding.EncodeToString(key)}
	}); err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (h *Handler) rotate(w http.ResponseWriter, r *http.Request, sess *keyservice.Session) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	id, err := queryID(r, sess, audit.OpRotate)
	if err != nil {
		fail(w, err)
		return
	}
	v, err := sess.Rotate(r.Context(), id)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, keyResponse{ID: id, Version: v})
}

// queryID returns the one id query parameter of r (the key service validates it); more or fewer
// are refused through sess, which audits op as invalid.
func queryID(r *http.Request, sess *keyservice.Session, op string) (string, error) {
	ids := r.URL.Query()["id"]
	if len(ids) != 1 {
		return "", sess.Malformed(r.Context(), op, "exactly one id query parameter is required",
			fmt.Errorf("%d id query parameters: %w", len(ids), keyring.ErrInvalidID))
	}
	return ids[0], nil
}

func (h *Handler) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (h *Handler) readyz(w http.ResponseWriter, r *http.Request) {
	if err := h.svc.Ready(r.Context()); err != nil {
		writeError(w, http.StatusServiceUnavailable, "not ready")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// StatusClientClosedRequest is the status of a call whose client went away before it finished
// (nginx's 499, as grpc-gateway maps gRPC's CANCELLED). The client never reads it; logs and
// metrics do.
const StatusClientClosedRequest = 499

// statuses maps each key service class to its status: the only place that does.
var statuses = map[keyservice.Class]int{
	keyservice.InvalidArgument: http.StatusBadRequest,
	keyservice.Unauthenticated: http.StatusUnauthorized,
	keyservice.Forbidden:       http.StatusForbidden,
	keyservice.NotFound:        http.StatusNotFound,
	keyservice.Limited:         http.StatusTooManyRequests,
	keyservice.Throttled:       http.StatusTooManyRequests,
	keyservice.Canceled:        StatusClientClosedRequest,
	keyservice.Unavailable:     http.StatusServiceUnavailable,
	keyservice.Internal:        http.StatusInternalServerError,
}

// fail writes the key service error err: the status of its class and its fixed message.
func fail(w http.ResponseWriter, err error) {
	e := keyservice.Classify(err)
	status, ok := statuses[e.Class]
	if !ok {
		status = http.StatusInternalServerError
	}
	msg := e.Msg
	switch e.Class {
	case keyservice.Unauthenticated:
		w.Header().Set("WWW-Authenticate", `Bearer realm="rkms"`)
	case keyservice.Limited:
		msg += ": retry later"
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(e.RetryAfter/time.Second)))
	}
	writeError(w, status, msg)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
