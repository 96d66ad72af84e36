package extproc

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/examples/app/recorder"
	"github.com/rkms/rkms/internal/testing/env"
)

// TestAdversarial tries, through the real Envoy, to get tagged plaintext past rkms to the app
// and to use rkms as a decryption oracle. Every attempt (adversarialAttempts) runs against two
// configurations: the shipped envoy/ingress.yaml and testdata/minimal-envoy.yaml, which does
// no path normalization and leaves policy selection to rkms's own match rules.
//
// Each attempt carries its own sentinel (a string and a number no other request holds). The
// suite fails when
//   - the app ever receives an attempt's sentinel in plaintext: in the method, target, host,
//     any header or trailer value, or the body, each read raw and decoded (percent-decoding,
//     gzip, zlib, UTF-16, a BOM, every JSON string and member name with escapes decoded);
//   - for an oracle attempt, which sends the ciphertext of its sentinel (sealed by a legitimate
//     request first), the client gets the sentinel back;
//   - a control (an ordinary request) does not succeed with ciphertext at the app and plaintext
//     back to the client.
//
// Status codes are recorded, not asserted: any refusal keeps the invariants. The table of
// outcomes is logged at the end (go test -run TestAdversarial -v ./extproc/).
func TestAdversarial(t *testing.T) {
	testenv.Integration(t)
	minimal, err := os.ReadFile("testdata/minimal-envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	configs := []struct {
		name  string
		tag   byte // in the sentinels, so that each run's are distinct
		start func(t *testing.T) *stack
	}{
		{"ingress.yaml", 'i', func(t *testing.T) *stack { return startStack(t, "ingress.yaml", Options{}) }},
		{"minimal-envoy.yaml", 'm', func(t *testing.T) *stack { return startStackYAML(t, minimal, "app", Options{}) }},
	}
	attempts := adversarialAttempts()
	results := make([][]advResult, len(configs))
	t.Run("configs", func(t *testing.T) {
		for i, c := range configs {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				rig := newAdvRig(t, c.start(t), c.tag)
				results[i] = rig.runAll(attempts)
			})
		}
	})
	names := make([]string, len(configs))
	for i, c := range configs {
		names[i] = c.name
	}
	t.Log("\n" + advTable(attempts, names, results))
}

// attempt is one way to try to get plaintext past rkms.
type advAttempt struct {
	family, name string
	build        func(v advVals) rawReq
	oracle       bool     // v.CT is the ciphertext of v.S, sealed by a legitimate request first
	control      bool     // an ordinary request: 2xx, ciphertext at fields, plaintext back
	fields       []string // control: dotted paths that must hold ciphertext at the app
	readBack     bool     // after a 2xx answer with an id, GET /patients/{id} in the same attempt
}

// vals are an attempt's secrets: S and N must never reach the app in plaintext; CT (oracle
// attempts) is the ciphertext of S, whose plaintext must never come back to the client.
type advVals struct{ S, N, CT string }

// advResult is one attempt's outcome with one configuration.
type advResult struct {
	advVals
	status  string // the statuses of the answers, "201,200"
	outcome string
	leak    bool
}

// advRig runs attempts against one stack.
type advRig struct {
	t       *testing.T
	s       *stack
	tag     byte
	addr    string       // host:port of Envoy's listener
	h2      *http.Client // HTTP/2 with prior knowledge, for the attempts that want it
	flagged map[string]bool
}

func newAdvRig(t *testing.T, s *stack, tag byte) *advRig {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: p}
	t.Cleanup(tr.CloseIdleConnections)
	return &advRig{t: t, s: s, tag: tag, addr: strings.TrimPrefix(s.base, "http://"),
		h2: &http.Client{Transport: tr, Timeout: advTimeout}, flagged: map[string]bool{}}
}

func (g *advRig) send(r rawReq) clientReply {
	if r.h2 {
		return sendH2(g.h2, g.s.base, r)
	}
	return sendHTTP1(g.addr, r)
}

func (g *advRig) runAll(attempts []advAttempt) []advResult {
	out := make([]advResult, len(attempts))
	for i, a := range attempts {
		out[i] = g.run(i+1, a)
	}
	// A request can reach the app after its attempt ended (say, once the client gave up): the
	// sentinels are unique, so one last look at everything the app received catches it.
	all := g.s.app.Received()
	seen := make([][]advExposure, len(all))
	for j, rc := range all {
		seen[j] = receivedViews(rc)
	}
	for i := range out {
		for j, rc := range all {
			if where := advFindSecret(seen[j], out[i].advVals); where != "" && !g.flagged[out[i].S] {
				g.flagged[out[i].S] = true
				out[i].leak = true
				out[i].outcome = "LEAK: app got plaintext later (" + where + ")"
				g.t.Errorf("#%d %s %s: the app received the sentinel in plaintext after the attempt: %s %s: %s",
					i+1, attempts[i].family, attempts[i].name, rc.Method, rc.RawURI, where)
			}
		}
	}
	return out
}

func (g *advRig) secrets(n int) advVals {
	var b [4]byte
	_, _ = rand.Read(b[:])
	d, _ := rand.Int(rand.Reader, big.NewInt(1e8))
	return advVals{
		S: fmt.Sprintf("S3NT-%c%03d-%s", g.tag, n, hex.EncodeToString(b[:])),
		N: fmt.Sprintf("9%d%03d%08d", g.tag%10, n, d.Int64()),
	}
}

func (g *advRig) run(n int, a advAttempt) advResult {
	t := g.t
	v := g.secrets(n)
	res := advResult{advVals: v}
	if a.oracle {
		ct, err := g.plant(v.S)
		if err != nil {
			t.Errorf("#%d %s %s: sealing the sentinel legitimately failed: %v", n, a.family, a.name, err)
			res.outcome = "setup failed"
			return res
		}
		res.CT, v.CT = ct, ct
	}
	before, streams := len(g.s.app.Received()), g.s.streams.count()
	reply := g.send(a.build(v))
	if a.readBack && reply.status()/100 == 2 {
		if id := advReplyID(reply.bodies[0]); id != "" {
			rb := g.send(rawReq{method: "GET", target: "/patients/" + id})
			reply.statuses = append(reply.statuses, rb.statuses...)
			reply.headers = append(reply.headers, rb.headers...)
			reply.bodies = append(reply.bodies, rb.bodies...)
			if rb.err != nil {
				reply.err = rb.err
			}
		}
	}
	got := g.s.app.Received()[before:]
	res.status = reply.statusText()

	appLeak, sawCT := "", false
	for _, rc := range got {
		vs := receivedViews(rc)
		if where := advFindSecret(vs, v); where != "" && appLeak == "" {
			appLeak = rc.Method + " " + rc.RawURI + ": " + where
		}
		sawCT = sawCT || advFind(vs, envelope.Prefix) != ""
	}
	clientLeak := ""
	if a.oracle {
		clientLeak = advFind(replyViews(reply), v.S)
	}
	switch {
	case appLeak != "":
		res.leak, res.outcome = true, "LEAK: app got plaintext ("+appLeak+")"
		g.flagged[v.S] = true
		t.Errorf("#%d %s %s: the app received the sentinel in plaintext: %s", n, a.family, a.name, appLeak)
	case clientLeak != "":
		res.leak, res.outcome = true, "LEAK: client got the plaintext of its ciphertext ("+clientLeak+")"
		t.Errorf("#%d %s %s: the client got the plaintext of the ciphertext it sent: %s", n, a.family, a.name, clientLeak)
	case len(got) > 0 && sawCT && a.oracle:
		res.outcome = "app got ciphertext, none opened"
	case len(got) > 0 && sawCT:
		res.outcome = "app got ciphertext"
	case len(got) > 0:
		res.outcome = "app got no sentinel"
	case reply.status() == 0 && (errors.Is(reply.err, io.EOF) || errors.Is(reply.err, io.ErrUnexpectedEOF) ||
		errors.Is(reply.err, syscall.ECONNRESET)):
		res.outcome = "no answer, connection closed" + g.s.streams.seenSince(streams)
	case reply.status() == 0:
		res.outcome = fmt.Sprintf("no answer (%v)", reply.err) + g.s.streams.seenSince(streams)
	default:
		// Envoy's own replies are JSON too: a reply to a request rkms never saw is Envoy's.
		seen, who := g.s.streams.seenSince(streams), advRefuser(reply)
		if seen != "" {
			who = "envoy"
		}
		res.outcome = fmt.Sprintf("refused %d by %s", reply.status(), who) + seen
	}
	if a.control {
		g.checkControl(n, a, v, reply, got)
	}
	return res
}

// plant creates a record legitimately with s as its ssn and returns the ciphertext the app stored.
func (g *advRig) plant(s string) (string, error) {
	r := g.send(rawReq{method: "POST", target: "/patients", header: advJSONType, body: []byte(`{"name":"plant","ssn":"` + s + `"}`)})
	if r.status() != http.StatusCreated {
		return "", fmt.Errorf("POST /patients: status %d (%v)", r.status(), r.err)
	}
	rec, ok := g.s.app.Record("patients", advReplyID(r.bodies[0]))
	if !ok {
		return "", fmt.Errorf("no record for %s", r.bodies[0])
	}
	ct, _ := advJSONAt(rec, "ssn").(string)
	if !envelope.IsCiphertext([]byte(ct)) {
		return "", fmt.Errorf("stored ssn is not a ciphertext: %s", rec)
	}
	return ct, nil
}

// checkControl fails unless an ordinary request succeeded with ciphertext at the app and the
// plaintext back to the client.
func (g *advRig) checkControl(n int, a advAttempt, v advVals, reply clientReply, got []recorder.Received) {
	t := g.t
	for _, st := range reply.statuses {
		if st/100 != 2 {
			t.Errorf("control #%d %s: statuses %s, want 2xx (%v)", n, a.name, reply.statusText(), reply.err)
			return
		}
	}
	if len(got) == 0 || len(reply.bodies) == 0 {
		t.Errorf("control #%d %s: the app received %d requests, the client %d answers (%v)", n, a.name, len(got), len(reply.bodies), reply.err)
		return
	}
	for _, f := range a.fields {
		if s, _ := advJSONAt(got[0].Body, f).(string); !envelope.IsCiphertext([]byte(s)) {
			t.Errorf("control #%d %s: the app got %s = %q, want a ciphertext", n, a.name, f, s)
		}
	}
	for i, b := range reply.bodies {
		if !bytes.Contains(b, []byte(v.S)) {
			t.Errorf("control #%d %s: answer %d lacks the plaintext: %s", n, a.name, i+1, b)
		}
	}
}

// refuser names who answered a request that never reached the app: rkms answers with a JSON
// error, Envoy with its own text.
func advRefuser(r clientReply) string {
	var e struct{ Error string }
	if len(r.bodies) > 0 && r.header.Get("Content-Type") == "application/json" && json.Unmarshal(r.bodies[0], &e) == nil && e.Error != "" {
		return "rkms"
	}
	return "envoy"
}

// seenSince says what rkms saw of the requests that never reached the app, from the ext_proc
// streams opened after the n-th: nothing, or only Envoy's own reply (a local reply goes through
// ext_proc's response path).
func (l *streamLog) seenSince(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.streams) <= n {
		return " (no ext_proc stream)"
	}
	for _, r := range l.streams[n:] {
		r.mu.Lock()
		first := ""
		if len(r.recv) > 0 {
			first = r.recv[0]
		}
		r.mu.Unlock()
		if strings.HasPrefix(first, "request_headers") {
			return ""
		}
	}
	return " (rkms saw only the reply)"
}

func advFindSecret(list []advExposure, v advVals) string {
	for _, s := range []string{v.S, v.N} {
		if where := advFind(list, s); where != "" {
			return where
		}
	}
	return ""
}

func advReplyID(body []byte) string {
	var r struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(body, &r)
	return r.ID
}

// jsonAt returns the value at a dotted path of doc (numbers index arrays), or nil.
func advJSONAt(doc []byte, path string) any {
	var v any
	if json.Unmarshal(doc, &v) != nil {
		return nil
	}
	for _, p := range strings.Split(path, ".") {
		switch c := v.(type) {
		case map[string]any:
			v = c[p]
		case []any:
			var i int
			if _, err := fmt.Sscan(p, &i); err != nil || i < 0 || i >= len(c) {
				return nil
			}
			v = c[i]
		default:
			return nil
		}
	}
	return v
}

// advTable renders the outcomes as a Markdown table, one column per configuration, and a
// summary of the leaks.
func advTable(attempts []advAttempt, configs []string, results [][]advResult) string {
	var b strings.Builder
	b.WriteString("| # | family | attempt | " + strings.Join(configs, " | ") + " |\n|---|---|---|")
	b.WriteString(strings.Repeat("---|", len(configs)) + "\n")
	leaks := make([][]string, len(configs))
	for i, a := range attempts {
		fmt.Fprintf(&b, "| %d | %s | `%s` |", i+1, a.family, a.name)
		for c := range configs {
			if i >= len(results[c]) {
				b.WriteString(" not run |")
				continue
			}
			r := results[c][i]
			fmt.Fprintf(&b, " %s %s |", r.status, r.outcome)
			if r.leak {
				leaks[c] = append(leaks[c], fmt.Sprint(i+1))
			}
		}
		b.WriteByte('\n')
	}
	for c, name := range configs {
		fmt.Fprintf(&b, "\n%s: %d attempts leaked: %s", name, len(leaks[c]), strings.Join(leaks[c], " "))
	}
	return b.String()
}
