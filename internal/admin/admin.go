package admin

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/rkms/rkms/internal/audit"
	"github.com/rkms/rkms/internal/keyservice"
)

// MaxHeaderBytes bounds a request's line and headers: 431 above it. net/http's own
// Server.MaxHeaderBytes lets several KiB more through (it reads in buffered chunks), so the
// handler counts them itself: request line, names, values and their separators.
const MaxHeaderBytes = 16 << 10

// DefaultMaxBodyBytes bounds request bodies: no endpoint but POST /v1/rewrap reads one (it has
// its own bound, keyservice.MaxRewrapRequestBytes), so anything larger is refused with 413
// before a handler runs.
const DefaultMaxBodyBytes = 64 << 10

// Options configures the handler.
type Options struct {
	// MaxBodyBytes bounds the request bodies of every endpoint but POST /v1/rewrap (413 above
	// it), which reads up to keyservice.MaxRewrapRequestBytes. 0: DefaultMaxBodyBytes.
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
		m.HandleFunc(prefix+"/key", h.serve(map[string]route{
			http.MethodGet:    {audit.OpRead, "id", []string{"id", "create", "version"}, h.get},
			http.MethodPost:   {audit.OpCreate, "id", []string{"id", "recreate"}, h.create},
			http.MethodDelete: {audit.OpDelete, "id", []string{"id"}, h.delete},
		}))
		m.HandleFunc(prefix+"/key/rotate", h.serve(map[string]route{
			http.MethodPost: {audit.OpRotate, "id", []string{"id"}, h.rotate},
		}))
		m.HandleFunc(prefix+"/keys", h.serve(map[string]route{
			http.MethodGet: {audit.OpList, "prefix", []string{"limit", "after", "prefix"}, h.list},
		}))
	}
	m.HandleFunc(rewrapPath, h.serve(map[string]route{
		http.MethodPost: {audit.OpRewrap, "", nil, h.rewrap},
	}))
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
	// Only POST /v1/rewrap reads its body (after authentication, up to its own bound); every
	// other body is refused above maxBody before a handler runs.
	reads := r.URL.Path == rewrapPath
	limit := h.maxBody
	if reads {
		limit = keyservice.MaxRewrapRequestBytes
	}
	if r.ContentLength > limit || (r.ContentLength < 0 && !reads && bodyOver(r.Body, limit)) {
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusRequestEntityTooLarge, "request body too large")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
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
// is longer than max. Only POST /v1/rewrap reads a body (it is not checked here), so what is
// read is dropped; the limit holds
// whether or not the client declared a length.
func bodyOver(body io.Reader, max int64) bool {
	n, _ := io.Copy(io.Discard, io.LimitReader(body, max+1))
	return n > max
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
	keyservice.InvalidArgument:      http.StatusBadRequest,
	keyservice.Unauthenticated:      http.StatusUnauthorized,
	keyservice.Forbidden:            http.StatusForbidden,
	keyservice.NotFound:             http.StatusNotFound,
	keyservice.Deleted:              http.StatusGone,
	keyservice.Exists:               http.StatusConflict,
	keyservice.AuthenticationFailed: http.StatusBadRequest, // per rewrap item only
	keyservice.Limited:              http.StatusTooManyRequests,
	keyservice.Throttled:            http.StatusTooManyRequests,
	keyservice.Canceled:             StatusClientClosedRequest,
	keyservice.Unavailable:          http.StatusServiceUnavailable,
	keyservice.Internal:             http.StatusInternalServerError,
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
