package admin

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/rkms/rkms/internal/audit"
	"github.com/rkms/rkms/internal/keyservice"
	"github.com/rkms/rkms/keyring"
)

// route is one method of an endpoint: its audited operation, the query parameter that names the
// key id in audit records, the query parameters it takes, and its handler.
type route struct {
	op      string
	auditID string
	params  []string
	handle  func(http.ResponseWriter, *http.Request, *keyservice.Session, query)
}

// serve authenticates the caller with the key service before any other check (a refusal is
// audited there when the method names a key operation), then refuses a wrong method (405), a
// malformed query or unknown query parameters (400, audited as invalid), and runs the route.
func (h *Handler) serve(routes map[string]route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rt, allowed := routes[r.Method]
		q, qerr := parseQuery(r.URL.RawQuery)
		remote, subject := audit.PeerFromHTTP(r)
		c := keyservice.Caller{API: audit.APIHTTP, Remote: remote, Subject: subject, Identities: keyservice.TLSIdentities(r.TLS),
			Authorization: r.Header.Get("Authorization")}
		sess, err := h.svc.Authenticate(r.Context(), c, rt.op, q[rt.auditID])
		if err != nil {
			fail(w, err)
			return
		}
		if !allowed {
			methods := make([]string, 0, len(routes))
			for m := range routes {
				methods = append(methods, m)
			}
			slices.Sort(methods)
			w.Header().Set("Allow", strings.Join(methods, ", "))
			writeError(w, http.StatusMethodNotAllowed, "method not allowed")
			return
		}
		if qerr == nil {
			qerr = q.unknown(rt.params)
		}
		if qerr != nil {
			fail(w, sess.Malformed(r.Context(), rt.op, qerr.Error(), fmt.Errorf("%w: %w", qerr, keyring.ErrInvalidID)))
			return
		}
		rt.handle(w, r, sess, q)
	}
}

// malformed refuses op's request with msg, audited as invalid.
func malformed(w http.ResponseWriter, r *http.Request, sess *keyservice.Session, op, msg string) {
	fail(w, sess.Malformed(r.Context(), op, msg, fmt.Errorf("%s: %w", msg, keyring.ErrInvalidID)))
}

// requireID returns the id parameter, or refuses the request.
func requireID(w http.ResponseWriter, r *http.Request, sess *keyservice.Session, op string, q query) (string, bool) {
	id, ok := q["id"]
	if !ok {
		malformed(w, r, sess, op, "exactly one id query parameter is required")
	}
	return id, ok
}

type keyResponse struct {
	ID       string       `json:"id"`
	Key      string       `json:"key,omitempty"`
	Version  uint32       `json:"version"`
	Metadata *keyMetadata `json:"metadata,omitempty"` // GET /key with metadata=true
}

// lend returns the read callback of the key service that fills resp.
func lend(resp *keyResponse) func(id string, version uint32, key []byte) {
	return func(id string, version uint32, key []byte) {
		*resp = keyResponse{ID: id, Version: version, Key: base64.StdEncoding.EncodeToString(key)}
	}
}

// get: GET /key?id=ID[&create=false][&version=N]. Without create=false or version it gets or
// creates the current key (the original behaviour); with either it never creates.
func (h *Handler) get(w http.ResponseWriter, r *http.Request, sess *keyservice.Session, q query) {
	id, ok := requireID(w, r, sess, audit.OpRead, q)
	if !ok {
		return
	}
	create, err := q.boolean("create", true)
	if err != nil {
		malformed(w, r, sess, audit.OpRead, err.Error())
		return
	}
	version, err := q.number("version", 1, 1<<32-1)
	if err != nil {
		malformed(w, r, sess, audit.OpRead, err.Error())
		return
	}
	withMetadata, err := q.boolean("metadata", false)
	if err != nil {
		malformed(w, r, sess, audit.OpRead, err.Error())
		return
	}
	if _, explicit := q["create"]; explicit && create && version != 0 {
		malformed(w, r, sess, audit.OpRead, "version never creates: drop create=true")
		return
	}
	var resp keyResponse
	if create && version == 0 {
		err = sess.Get(r.Context(), id, lend(&resp))
	} else {
		err = sess.Read(r.Context(), id, uint32(version), lend(&resp))
	}
	if err == nil && withMetadata {
		var ki keyring.KeyInfo
		if ki, err = sess.Metadata(r.Context(), id); err == nil {
			resp.Metadata = metadataOf(ki)
		}
	}
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// create: POST /key?id=ID[&recreate=true]: 201 with the new key; 409 when the id has a key, 410
// when it was deleted and recreate is not set.
func (h *Handler) create(w http.ResponseWriter, r *http.Request, sess *keyservice.Session, q query) {
	id, ok := requireID(w, r, sess, audit.OpCreate, q)
	if !ok {
		return
	}
	recreate, err := q.boolean("recreate", false)
	if err != nil {
		malformed(w, r, sess, audit.OpCreate, err.Error())
		return
	}
	var resp keyResponse
	if err := sess.Create(r.Context(), id, recreate, lend(&resp)); err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, resp)
}

// delete: DELETE /key?id=ID: 204; 404 when absent, 410 when deleted already.
func (h *Handler) delete(w http.ResponseWriter, r *http.Request, sess *keyservice.Session, q query) {
	id, ok := requireID(w, r, sess, audit.OpDelete, q)
	if !ok {
		return
	}
	if err := sess.Delete(r.Context(), id); err != nil {
		fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// rotate: POST /key/rotate?id=ID: 200 {"id","version"}.
func (h *Handler) rotate(w http.ResponseWriter, r *http.Request, sess *keyservice.Session, q query) {
	id, ok := requireID(w, r, sess, audit.OpRotate, q)
	if !ok {
		return
	}
	v, err := sess.Rotate(r.Context(), id)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, keyResponse{ID: id, Version: v})
}

type listResponse struct {
	IDs     []string `json:"ids"`
	Deleted []string `json:"deleted"`
	Next    string   `json:"next"`
}

// list: GET /keys[?limit=N][&after=CURSOR][&prefix=P]: 200 {"ids","deleted","next"}.
func (h *Handler) list(w http.ResponseWriter, r *http.Request, sess *keyservice.Session, q query) {
	limit, err := q.number("limit", 1, keyservice.MaxListLimit)
	if err != nil {
		malformed(w, r, sess, audit.OpList, err.Error())
		return
	}
	res, err := sess.List(r.Context(), keyservice.ListRequest{Prefix: q["prefix"], Cursor: q["after"], Limit: int(limit)})
	if err != nil {
		fail(w, err)
		return
	}
	resp := listResponse{IDs: res.IDs, Deleted: res.Deleted, Next: res.Next}
	if resp.IDs == nil {
		resp.IDs = []string{}
	}
	if resp.Deleted == nil {
		resp.Deleted = []string{}
	}
	writeJSON(w, http.StatusOK, resp)
}
