// Package recorder is a tiny JSON record store used as the application behind Envoy in rkms's
// examples and end-to-end tests. It keeps records in memory per collection and remembers every
// request it received, so that tests can check that no plaintext of a tagged field reached it.
//
// # Routes
//
//	POST   /{collection}       store the JSON object body; reply 201 with it, "id" inserted first
//	                           (`{"id":"N",` replaces the opening brace; all other bytes are kept)
//	PUT    /{collection}/{id}  replace a record (the same "id" insertion)
//	GET    /{collection}/{id}  the stored record, 404 if none
//	GET    /{collection}       {"items":[record, ...]} in creation order; query parameters other
//	                           than "encoding", "offset" and "limit" filter: ?ssn_idx=X keeps the
//	                           records whose top-level member ssn_idx is the string X (a blind
//	                           index lookup); ?offset=N&limit=M returns one page of the result
//	POST   /{collection}/_import  NDJSON body, one JSON object per line with a string "id":
//	                           stored as is (a database load; a line without an id is refused
//	                           and nothing is stored); reply {"imported":N}
//	GET    /{collection}/_export  every record, one per line (application/x-ndjson)
//	DELETE /{collection}/{id}  remove a record, 204
//
// Records are stored byte for byte as received (apart from the inserted "id" member), so
// ciphertexts come back exactly as they went in. Every reply is application/json with a
// Content-Length. A request with ?encoding=gzip gets a gzip-compressed reply.
package recorder

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// MaxBody is the largest request body the app reads.
const MaxBody = 8 << 20

// Received is one request as the app saw it.
type Received struct {
	Method  string
	Path    string // with the query, as net/http re-escapes it
	RawURI  string // the request target exactly as it arrived (net/http's Request.RequestURI)
	Host    string // the Host header (net/http keeps it out of Header)
	Header  http.Header
	Body    []byte
	Trailer http.Header // trailers of a chunked body, if any
}

// App is the record store. It is an http.Handler and safe for concurrent use.
type App struct {
	mu       sync.Mutex
	colls    map[string]*collection
	received []Received
	nextID   int
	// bounded (NewBounded): no log of received requests, and at most maxRecords per collection.
	bounded    bool
	maxRecords int
}

type collection struct {
	order   []string
	records map[string][]byte
}

var _ http.Handler = (*App)(nil)

// New returns an empty App.
func New() *App { return &App{colls: map[string]*collection{}} }

// NewBounded returns an empty App for load runs, whose memory stays bounded however many
// requests it serves: it keeps no log of received requests ([App.Received] returns nothing), and
// a collection holds at most maxRecords records (at least 1): storing a new one beyond that drops
// the oldest.
func NewBounded(maxRecords int) *App {
	return &App{colls: map[string]*collection{}, bounded: true, maxRecords: max(maxRecords, 1)}
}

// Received returns a copy of every request received so far, in order.
func (a *App) Received() []Received {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.received)
}

// Record returns the stored bytes of a record.
func (a *App) Record(coll, id string) ([]byte, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.colls[coll]
	if c == nil {
		return nil, false
	}
	r, ok := c.records[id]
	return slices.Clone(r), ok
}

// Put stores raw as record id of coll, as is (tests use it to tamper with stored data).
func (a *App) Put(coll, id string, raw []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.put(coll, id, slices.Clone(raw))
}

func (a *App) put(coll, id string, raw []byte) {
	c := a.colls[coll]
	if c == nil {
		c = &collection{records: map[string][]byte{}}
		a.colls[coll] = c
	}
	if _, ok := c.records[id]; !ok {
		c.order = append(c.order, id)
		if a.bounded && len(c.order) > a.maxRecords {
			delete(c.records, c.order[0])
			c.order = c.order[1:]
		}
	}
	c.records[id] = raw
}

// ServeHTTP implements the routes in the package documentation.
func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	if err != nil || len(body) > MaxBody {
		reply(w, r, http.StatusRequestEntityTooLarge, errorBody("body unreadable or too large"))
		return
	}
	if !a.bounded {
		a.mu.Lock()
		a.received = append(a.received, Received{Method: r.Method, Path: r.URL.RequestURI(), RawURI: r.RequestURI,
			Host: r.Host, Header: r.Header.Clone(), Body: body, Trailer: r.Trailer.Clone()})
		a.mu.Unlock()
	}

	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case parts[0] == "" || len(parts) > 2:
		reply(w, r, http.StatusNotFound, errorBody("no such route"))
	case len(parts) == 1 && r.Method == http.MethodPost:
		a.create(w, r, parts[0], body)
	case len(parts) == 1 && r.Method == http.MethodGet:
		a.list(w, r, parts[0])
	case len(parts) == 2 && parts[1] == "_import" && r.Method == http.MethodPost:
		a.importNDJSON(w, r, parts[0], body)
	case len(parts) == 2 && parts[1] == "_export" && r.Method == http.MethodGet:
		a.export(w, parts[0])
	case len(parts) == 2 && r.Method == http.MethodGet:
		a.get(w, r, parts[0], parts[1])
	case len(parts) == 2 && r.Method == http.MethodPut:
		a.replace(w, r, parts[0], parts[1], body)
	case len(parts) == 2 && r.Method == http.MethodDelete:
		a.remove(w, r, parts[0], parts[1])
	default:
		reply(w, r, http.StatusMethodNotAllowed, errorBody("method not allowed"))
	}
}

func (a *App) create(w http.ResponseWriter, r *http.Request, coll string, body []byte) {
	a.mu.Lock()
	a.nextID++
	id := strconv.Itoa(a.nextID)
	a.mu.Unlock()
	a.store(w, r, coll, id, body, http.StatusCreated)
}

func (a *App) replace(w http.ResponseWriter, r *http.Request, coll, id string, body []byte) {
	a.store(w, r, coll, id, body, http.StatusOK)
}

func (a *App) store(w http.ResponseWriter, r *http.Request, coll, id string, body []byte, status int) {
	rec, ok := withID(body, id)
	if !ok {
		reply(w, r, http.StatusBadRequest, errorBody("body must be a JSON object"))
		return
	}
	a.mu.Lock()
	a.put(coll, id, rec)
	a.mu.Unlock()
	reply(w, r, status, rec)
}

func (a *App) get(w http.ResponseWriter, r *http.Request, coll, id string) {
	rec, ok := a.Record(coll, id)
	if !ok {
		reply(w, r, http.StatusNotFound, errorBody("no such record"))
		return
	}
	reply(w, r, http.StatusOK, rec)
}

func (a *App) list(w http.ResponseWriter, r *http.Request, coll string) {
	q := r.URL.Query()
	offset, limit, ok := page(q)
	if !ok {
		reply(w, r, http.StatusBadRequest, errorBody("offset and limit must be non-negative integers"))
		return
	}
	var b bytes.Buffer
	b.WriteString(`{"items":[`)
	a.mu.Lock()
	if c := a.colls[coll]; c != nil {
		n, seen := 0, 0
		for _, id := range c.order {
			if !matches(c.records[id], q) {
				continue
			}
			if seen++; seen <= offset {
				continue
			}
			if limit >= 0 && n == limit {
				break
			}
			if n++; n > 1 {
				b.WriteByte(',')
			}
			b.Write(c.records[id])
		}
	}
	a.mu.Unlock()
	b.WriteString(`]}`)
	reply(w, r, http.StatusOK, b.Bytes())
}

// matches reports whether a record's top-level string members equal every filter of the query
// (all but "encoding").
func matches(rec []byte, q map[string][]string) bool {
	var m map[string]json.RawMessage
	for name, vs := range q {
		if name == "encoding" || name == "offset" || name == "limit" {
			continue
		}
		if m == nil && json.Unmarshal(rec, &m) != nil {
			return false
		}
		var v string
		if json.Unmarshal(m[name], &v) != nil || len(vs) != 1 || v != vs[0] {
			return false
		}
	}
	return true
}

// page returns the offset and limit of a list (limit -1: no limit).
func page(q map[string][]string) (offset, limit int, ok bool) {
	limit = -1
	for name, p := range map[string]*int{"offset": &offset, "limit": &limit} {
		vs := q[name]
		if len(vs) == 0 {
			continue
		}
		n, err := strconv.Atoi(vs[0])
		if err != nil || n < 0 || len(vs) > 1 {
			return 0, 0, false
		}
		*p = n
	}
	return offset, limit, true
}

// importNDJSON stores each line of body (a JSON object with a string "id") as is.
func (a *App) importNDJSON(w http.ResponseWriter, r *http.Request, coll string, body []byte) {
	type rec struct {
		id  string
		raw []byte
	}
	var recs []rec
	for n, line := range bytes.Split(body, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var head struct {
			ID *string `json:"id"`
		}
		if line[0] != '{' || json.Unmarshal(line, &head) != nil || head.ID == nil || *head.ID == "" {
			reply(w, r, http.StatusBadRequest, errorBody(fmt.Sprintf("line %d: not a JSON object with a string id", n+1)))
			return
		}
		recs = append(recs, rec{*head.ID, slices.Clone(line)})
	}
	a.mu.Lock()
	for _, x := range recs {
		a.put(coll, x.id, x.raw)
	}
	a.mu.Unlock()
	reply(w, r, http.StatusOK, []byte(fmt.Sprintf(`{"imported":%d}`, len(recs))))
}

// export writes every record of coll, one per line.
func (a *App) export(w http.ResponseWriter, coll string) {
	var b bytes.Buffer
	a.mu.Lock()
	if c := a.colls[coll]; c != nil {
		for _, id := range c.order {
			b.Write(c.records[id])
			b.WriteByte('\n')
		}
	}
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	_, _ = w.Write(b.Bytes())
}

func (a *App) remove(w http.ResponseWriter, r *http.Request, coll, id string) {
	a.mu.Lock()
	c := a.colls[coll]
	_, ok := c.lookup(id)
	if ok {
		delete(c.records, id)
		c.order = slices.DeleteFunc(c.order, func(s string) bool { return s == id })
	}
	a.mu.Unlock()
	if !ok {
		reply(w, r, http.StatusNotFound, errorBody("no such record"))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (c *collection) lookup(id string) ([]byte, bool) {
	if c == nil {
		return nil, false
	}
	r, ok := c.records[id]
	return r, ok
}

// withID inserts "id" as the first member of a JSON object without re-encoding anything else.
func withID(body []byte, id string) ([]byte, bool) {
	t := bytes.TrimSpace(body)
	if len(t) < 2 || t[0] != '{' || !json.Valid(t) {
		return nil, false
	}
	out := []byte(`{"id":"` + id + `"`)
	if bytes.TrimSpace(t[1:])[0] != '}' {
		out = append(out, ',')
	}
	return append(out, t[1:]...), true
}

func errorBody(msg string) []byte {
	b, _ := json.Marshal(map[string]string{"error": msg})
	return b
}

func reply(w http.ResponseWriter, r *http.Request, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if r.URL.Query().Get("encoding") == "gzip" {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		_, _ = zw.Write(body)
		_ = zw.Close()
		body = b.Bytes()
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
