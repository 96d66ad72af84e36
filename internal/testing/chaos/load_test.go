package chaos

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rkms/rkms/internal/testing/envoytest"
)

// patient is what the client sends; ref (a plain field) ties a stored record to the request
// that made it, whether or not the client saw it succeed.
type patient struct {
	Ref     string  `json:"ref"`
	Tenant  string  `json:"tenant"`
	Name    string  `json:"name"`
	SSN     string  `json:"ssn"`
	Contact contact `json:"contact"`
}

type contact struct {
	Email string `json:"email"`
}

// token returns a distinctive plaintext: prefix plus 24 random hex digits, which can only
// appear in a body if that exact plaintext is there.
func token(prefix string) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// op kinds.
const (
	opPostExisting = "POST existing tenant"
	opPostNew      = "POST new tenant"
	opGet          = "GET record"
)

// result is one request's outcome.
type result struct {
	kind     string
	tenant   string
	start    time.Time
	end      time.Time
	status   int    // 0: transport error
	ok       bool   // 2xx with the expected plaintexts
	problem  string // an invariant broken by this response, if any
	errText  string // transport error
	bodyHead string
}

// load is the steady request stream through Envoy.
type load struct {
	url     string // http://127.0.0.1:PORT of Envoy's listener
	client  *http.Client
	rate    int
	workers int
	pool    []string // existing tenants

	seq      atomic.Int64
	newSeq   atomic.Int64
	mu       sync.Mutex
	sent     map[string]patient // by ref: every POST body sent
	tokens   map[string]string  // every plaintext token sent -> ref
	created  []created          // records the client saw created
	results  []result
	newTried []string // new tenants tried
}

// created is a record the client saw created (201), with what it sent.
type created struct {
	id string
	p  patient
}

func newLoad(url string, rate, workers int, pool []string) *load {
	return &load{url: url, rate: rate, workers: workers, pool: pool,
		client: &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
			MaxIdleConnsPerHost: workers * 2, DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}},
		sent: map[string]patient{}, tokens: map[string]string{}}
}

// run offers rate requests per second until ctx ends (requests already started finish). At most
// maxRequests are sent in all.
func (l *load) run(ctx context.Context, maxRequests int64) {
	tick := time.NewTicker(time.Second / time.Duration(l.rate))
	defer tick.Stop()
	tokens := make(chan struct{}, l.workers)
	var wg sync.WaitGroup
	for range l.workers {
		wg.Go(func() {
			for range tokens {
				l.one(ctx)
			}
		})
	}
	var issued int64
loop:
	for issued < maxRequests {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
			select {
			case tokens <- struct{}{}: // a token is dropped when every worker is busy
				issued++
			default:
			}
		}
	}
	close(tokens)
	wg.Wait()
}

// one sends one request, chosen at random: a POST for an existing tenant (60%), a POST for a
// brand-new tenant (15%), or a GET of a record created earlier (25%).
func (l *load) one(ctx context.Context) {
	n := mrand.IntN(100)
	l.mu.Lock()
	haveRecords := len(l.created) > 0
	var c created
	if haveRecords {
		c = l.created[mrand.IntN(len(l.created))]
	}
	l.mu.Unlock()
	switch {
	case n < 25 && haveRecords:
		l.get(ctx, c)
	case n < 40:
		t := fmt.Sprintf("new-%d-%s", l.newSeq.Add(1), token("")[:6])
		l.mu.Lock()
		l.newTried = append(l.newTried, t)
		l.mu.Unlock()
		l.post(ctx, opPostNew, t)
	default:
		l.post(ctx, opPostExisting, l.pool[mrand.IntN(len(l.pool))])
	}
}

func (l *load) post(ctx context.Context, kind, tenant string) {
	p := patient{Ref: fmt.Sprintf("r%d", l.seq.Add(1)), Tenant: tenant, Name: "chaos patient",
		SSN: token("SSN-"), Contact: contact{Email: token("MAIL-") + "@example.com"}}
	body, _ := json.Marshal(p)
	l.mu.Lock()
	l.sent[p.Ref] = p
	l.tokens[p.SSN] = p.Ref
	l.tokens[p.Contact.Email] = p.Ref
	l.mu.Unlock()
	res := l.do(ctx, kind, tenant, http.MethodPost, "/patients", body)
	if res.status == http.StatusCreated {
		var got struct {
			ID string `json:"id"`
			patient
		}
		switch {
		case json.Unmarshal([]byte(res.bodyHead), &got) != nil:
			res.problem = "201 with a body that is not the record"
		case got.SSN != p.SSN || got.Contact.Email != p.Contact.Email || got.Ref != p.Ref:
			res.problem = "201 with tagged fields other than those sent"
		default:
			res.ok = true
			l.mu.Lock()
			l.created = append(l.created, created{id: got.ID, p: p})
			l.mu.Unlock()
		}
	}
	l.record(res)
}

func (l *load) get(ctx context.Context, c created) {
	res := l.do(ctx, opGet, c.p.Tenant, http.MethodGet, "/patients/"+c.id, nil)
	if res.status == http.StatusOK {
		res.problem = checkRecord(res.bodyHead, c.p)
		res.ok = res.problem == ""
	}
	l.record(res)
}

// checkRecord checks a decrypted record against what was sent.
func checkRecord(body string, p patient) string {
	var got patient
	switch {
	case json.Unmarshal([]byte(body), &got) != nil:
		return "200 with a body that is not the record"
	case got.SSN != p.SSN || got.Contact.Email != p.Contact.Email || got.Ref != p.Ref:
		return "200 with tagged fields other than those sent"
	}
	return ""
}

// do sends one request and classifies a failure: it must be fail-closed with a documented
// status and a body that holds neither a ciphertext nor a plaintext token.
func (l *load) do(ctx context.Context, kind, tenant, method, path string, body []byte) result {
	res := result{kind: kind, tenant: tenant, start: time.Now()}
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), method, l.url+path, bytes.NewReader(body))
	if err != nil {
		panic(err)
	}
	req.Header.Set("Content-Type", "application/json")
	// The tenant is the verified token's (ingress.yaml's jwt_authn; key id tenant-{jwt:tenant}).
	tok, err := envoytest.TenantToken(tenant)
	if err != nil {
		panic(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := l.client.Do(req)
	if err != nil {
		res.end = time.Now()
		res.errText = err.Error()
		res.problem = "transport error (no HTTP status): " + err.Error()
		return res
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	res.end = time.Now()
	res.status = resp.StatusCode
	res.bodyHead = string(b)
	if resp.StatusCode < 300 {
		return res
	}
	if !documentedFailure(resp.StatusCode) {
		res.problem = fmt.Sprintf("undocumented failure status %d: %.200s", resp.StatusCode, b)
	}
	if strings.Contains(res.bodyHead, "rkms:") || strings.Contains(res.bodyHead, "SSN-") || strings.Contains(res.bodyHead, "MAIL-") {
		res.problem = fmt.Sprintf("failure %d carries a ciphertext or a plaintext: %.200s", resp.StatusCode, b)
	}
	return res
}

// documentedFailure lists the statuses a client may see while the key service or an rkms
// replica fails (RELIABILITY.md, "Failure statuses"): rkms's JSON 503 (key service unavailable
// or slower than key_timeout), Envoy's 503 (status_on_error: the ext_proc stream failed or no
// healthy rkms endpoint) and Envoy's 504 (ext_proc message_timeout).
func documentedFailure(status int) bool {
	return status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout
}

func (l *load) record(r result) {
	l.mu.Lock()
	l.results = append(l.results, r)
	l.mu.Unlock()
}

// snapshot returns copies of what the load recorded.
func (l *load) snapshot() (results []result, sent map[string]patient, tokens map[string]string, newTried []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	sent = make(map[string]patient, len(l.sent))
	for k, v := range l.sent {
		sent[k] = v
	}
	tokens = make(map[string]string, len(l.tokens))
	for k, v := range l.tokens {
		tokens[k] = v
	}
	return append([]result(nil), l.results...), sent, tokens, append([]string(nil), l.newTried...)
}
