package admin

import (
	"net/http"
	"time"

	"github.com/rkms/rkms/internal/audit"
	"github.com/rkms/rkms/internal/keyservice"
	"github.com/rkms/rkms/keyring"
)

// Version lifecycle endpoints (see keyring's package doc):
//
//	GET  /key/metadata?id=ID                         read right: the key's lifecycle state, no key material
//	POST /key/min-decrypt-version?id=ID&version=N    rotate right: retire versions below N (0 or 1: none)
//	POST /key/maintain?id=ID                         rotate right: rotate if due, destroy versions past the grace
//	POST /key/seals?id=ID&version=N&count=C          read right: count C seals the caller makes itself (rkms seal --server)
//
// GET /key?id=ID&metadata=true adds the same state to the key it returns.
func (h *Handler) lifecycleRoutes(m *http.ServeMux, prefix string) {
	m.HandleFunc(prefix+"/key/metadata", h.serve(map[string]route{
		http.MethodGet: {audit.OpRead, "id", []string{"id"}, h.metadata},
	}))
	m.HandleFunc(prefix+"/key/min-decrypt-version", h.serve(map[string]route{
		http.MethodPost: {keyservice.OpSetMinDecryptVersion, "id", []string{"id", "version"}, h.setMinDecryptVersion},
	}))
	m.HandleFunc(prefix+"/key/maintain", h.serve(map[string]route{
		http.MethodPost: {keyservice.OpMaintain, "id", []string{"id"}, h.maintain},
	}))
	m.HandleFunc(prefix+"/key/seals", h.serve(map[string]route{
		http.MethodPost: {keyservice.OpReserveSeals, "id", []string{"id", "version", "count"}, h.reserveSeals},
	}))
}

// sealsResponse is the answer of POST /key/seals.
type sealsResponse struct {
	ID       string `json:"id"`
	Version  uint32 `json:"version"`
	Reserved int    `json:"reserved"` // values the caller may seal under the version
	Limit    bool   `json:"limit"`    // the version may seal no more: read the current key again
	Counted  bool   `json:"counted"`  // false: the server counts no seals (max_seals 0)
}

// reserveSeals: POST /key/seals?id=ID&version=N&count=C: read right: counts C seals that the
// caller makes itself with version N of the key (rkms seal --server) against the version's seal
// limit, as rkms's own seals are; 200 with how many it may make (at most one reservation
// block), or limit true when the version may seal no more.
func (h *Handler) reserveSeals(w http.ResponseWriter, r *http.Request, sess *keyservice.Session, q query) {
	op := keyservice.OpReserveSeals
	id, ok := requireID(w, r, sess, op, q)
	if !ok {
		return
	}
	for _, name := range []string{"version", "count"} {
		if _, ok := q[name]; !ok {
			malformed(w, r, sess, op, "exactly one "+name+" query parameter is required")
			return
		}
	}
	v, err := q.number("version", 1, 1<<32-1)
	if err != nil {
		malformed(w, r, sess, op, err.Error())
		return
	}
	n, err := q.number("count", 1, maxSealCount)
	if err != nil {
		malformed(w, r, sess, op, err.Error())
		return
	}
	res, err := sess.ReserveSeals(r.Context(), id, uint32(v), int(n))
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, sealsResponse{ID: id, Version: uint32(v), Reserved: res.Reserved, Limit: res.Limit, Counted: res.Counted})
}

// maxSealCount bounds the count of POST /key/seals (the keyring grants one block at most).
const maxSealCount = 1_000_000

// keyMetadata is the JSON form of keyring.KeyInfo.
type keyMetadata struct {
	ID                string            `json:"id"`
	Current           uint32            `json:"current"`
	MinDecryptVersion uint32            `json:"min_decrypt_version"`
	RotationDue       *time.Time        `json:"rotation_due,omitempty"` // absent: no age rotation
	MaxSeals          uint64            `json:"max_seals,omitempty"`    // absent: no seal limit
	SealsLeft         uint64            `json:"seals_left"`
	Versions          []versionMetadata `json:"versions"`
}

type versionMetadata struct {
	Version      uint32     `json:"version"`
	Created      time.Time  `json:"created"`
	Retired      *time.Time `json:"retired,omitempty"`
	Destroyed    *time.Time `json:"destroyed,omitempty"`
	DestroyAfter *time.Time `json:"destroy_after,omitempty"`
	Seals        uint64     `json:"seals"`
	Regions      int        `json:"regions"`
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func metadataOf(ki keyring.KeyInfo) *keyMetadata {
	md := &keyMetadata{ID: ki.ID, Current: ki.Current, MinDecryptVersion: ki.MinDecryptVersion,
		RotationDue: timeOrNil(ki.RotationDue), MaxSeals: ki.MaxSeals, SealsLeft: ki.SealsLeft,
		Versions: make([]versionMetadata, len(ki.Versions))}
	for i, v := range ki.Versions {
		md.Versions[i] = versionMetadata{Version: v.Number, Created: v.Created.UTC(), Retired: timeOrNil(v.Retired),
			Destroyed: timeOrNil(v.Destroyed), DestroyAfter: timeOrNil(v.DestroyAfter), Seals: v.Seals, Regions: v.Regions}
	}
	return md
}

// metadata: GET /key/metadata?id=ID: 200 with the key's lifecycle state.
func (h *Handler) metadata(w http.ResponseWriter, r *http.Request, sess *keyservice.Session, q query) {
	id, ok := requireID(w, r, sess, audit.OpRead, q)
	if !ok {
		return
	}
	ki, err := sess.Describe(r.Context(), id)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, metadataOf(ki))
}

// setMinDecryptVersion: POST /key/min-decrypt-version?id=ID&version=N: 200 with the state after.
func (h *Handler) setMinDecryptVersion(w http.ResponseWriter, r *http.Request, sess *keyservice.Session, q query) {
	op := keyservice.OpSetMinDecryptVersion
	id, ok := requireID(w, r, sess, op, q)
	if !ok {
		return
	}
	if _, ok := q["version"]; !ok {
		malformed(w, r, sess, op, "exactly one version query parameter is required")
		return
	}
	v, err := q.number("version", 0, 1<<32-1)
	if err != nil {
		malformed(w, r, sess, op, err.Error())
		return
	}
	ki, err := sess.SetMinDecryptVersion(r.Context(), id, uint32(v))
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, metadataOf(ki))
}

type maintainResponse struct {
	Rotated   uint32       `json:"rotated"` // the version that became current, 0: none
	Reason    string       `json:"reason,omitempty"`
	Destroyed []uint32     `json:"destroyed"`
	Metadata  *keyMetadata `json:"metadata"`
}

// maintain: POST /key/maintain?id=ID: 200 with what was done and the state after.
func (h *Handler) maintain(w http.ResponseWriter, r *http.Request, sess *keyservice.Session, q query) {
	id, ok := requireID(w, r, sess, keyservice.OpMaintain, q)
	if !ok {
		return
	}
	res, err := sess.Maintain(r.Context(), id)
	if err != nil {
		fail(w, err)
		return
	}
	resp := maintainResponse{Rotated: res.Rotated, Reason: res.Reason, Destroyed: res.Destroyed, Metadata: metadataOf(res.Info)}
	if resp.Destroyed == nil {
		resp.Destroyed = []uint32{}
	}
	writeJSON(w, http.StatusOK, resp)
}
