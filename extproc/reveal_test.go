package extproc

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.yaml.in/yaml/v3"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/extproc/policy"
)

// revealPolicyYAML is issue 21's example: billing sees card numbers, support a masked view,
// analytics a token of the SSN, everyone else nothing.
const revealPolicyYAML = `
name: people
match: {path_prefix: /people}
key_id: "tenant-{jwt:tenant}"
request:
  encrypt: ["$.ssn", "$.cards[*].number", "$.contact.email", "$.age"]
response:
  decrypt: ["$.ssn", "$.cards[*].number", "$.contact.email", "$.age"]
  reveal:
    default: redact
    audit: true
    rules:
      - name: billing
        when: {jwt: {role: billing}}
        fields: {"$.cards[*].number": full}
      - name: support
        when: {jwt: {role: support}}
        fields: {"$.ssn": "mask:last4", "$.contact.email": "mask:email", "$.cards[*].number": "mask:last4", "$.age": "mask:last4"}
      - name: analytics
        when: {jwt: {scope: analytics}}
        fields: {"$.ssn": token}
`

const person = `{"name":"Ada","ssn":"123-45-6789","cards":[{"number":"4111111111111111"},{"number":"5500000000000004"}],"contact":{"email":"ada.l@example.com"},"age":36}`

func revealPolicies(t testing.TB, src string) func([]policy.Config) []policy.Config {
	return func(ps []policy.Config) []policy.Config {
		var c policy.Config
		dec := yaml.NewDecoder(strings.NewReader(src))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil {
			t.Fatal(err)
		}
		return append(ps, c)
	}
}

// revealRecorder is an Observer and a RevealAuditor that keeps what it is told.
type revealRecorder struct {
	mu      sync.Mutex
	reveals map[string]int // "policy rule action" -> n
	audits  []string
}

func (r *revealRecorder) ObserveRequest(string, string, string, int, time.Duration) {}
func (r *revealRecorder) ObserveFields(string, string, int)                         {}
func (r *revealRecorder) ObserveReveal(pol, rule, action string, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reveals[pol+" "+rule+" "+action] += n
}

func (r *revealRecorder) AuditReveal(ctx context.Context, pol, keyID string, fields []RevealedField) {
	b, _ := json.Marshal(fields)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.audits = append(r.audits, RequestID(ctx)+" "+pol+" "+keyID+" "+string(b))
}

func TestReveal(t *testing.T) {
	rec := &revealRecorder{reveals: map[string]int{}}
	e := newTestEnvWith(t, Options{Observer: rec, RevealAuditor: rec}, revealPolicies(t, revealPolicyYAML))
	as := func(claims map[string]any) envoyCfg { return envoyCfg{jwt: claims} }
	x := e.mustDoCfg(as(map[string]any{"tenant": "acme", "role": "clerk"}), jsonReq("POST", "/people", "", person), 201)
	e.noPlaintextReached("123-45-6789", "4111111111111111", "ada.l@example.com")
	id := field(t, x.client.body, "id").(string)
	if x.client.body == nil || bytes.Contains(x.client.body, []byte("123-45-6789")) {
		t.Errorf("the clerk's create reply shows the SSN: %s", x.client.body)
	}

	tokenRE := regexp.MustCompile(`^tok_[A-Za-z0-9_-]{22}$`)
	var acmeToken string
	for _, tc := range []struct {
		name   string
		claims map[string]any
		want   string // the reply; TOKEN stands for the SSN's token
	}{
		{"billing", map[string]any{"tenant": "acme", "role": "billing"},
			`{"id":"1","name":"Ada","ssn":null,"cards":[{"number":"4111111111111111"},{"number":"5500000000000004"}],"contact":{"email":null},"age":null}`},
		{"support", map[string]any{"tenant": "acme", "role": "support"},
			`{"id":"1","name":"Ada","ssn":"*******6789","cards":[{"number":"************1111"},{"number":"************0004"}],"contact":{"email":"a****@example.com"},"age":null}`},
		{"analytics", map[string]any{"tenant": "acme", "scope": "read analytics"},
			`{"id":"1","name":"Ada","ssn":"TOKEN","cards":[{"number":null},{"number":null}],"contact":{"email":null},"age":null}`},
		{"role list", map[string]any{"tenant": "acme", "role": []any{"intern", "billing"}},
			`{"id":"1","name":"Ada","ssn":null,"cards":[{"number":"4111111111111111"},{"number":"5500000000000004"}],"contact":{"email":null},"age":null}`},
		{"none", map[string]any{"tenant": "acme"},
			`{"id":"1","name":"Ada","ssn":null,"cards":[{"number":null},{"number":null}],"contact":{"email":null},"age":null}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := e.mustDoCfg(as(tc.claims), jsonReq("GET", "/people/"+id, "", ""), 200)
			got := string(x.client.body)
			if strings.Contains(tc.want, "TOKEN") {
				tok, _ := field(t, x.client.body, "ssn").(string)
				if !tokenRE.MatchString(tok) {
					t.Fatalf("ssn token %q", tok)
				}
				acmeToken = tok
				got = strings.Replace(got, tok, "TOKEN", 1)
			}
			if got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
	// The same request again gives the same token; another tenant's token of the same SSN differs.
	x = e.mustDoCfg(as(map[string]any{"tenant": "acme", "scope": "analytics"}), jsonReq("GET", "/people/"+id, "", ""), 200)
	if tok := field(t, x.client.body, "ssn"); tok != acmeToken {
		t.Errorf("token changed between requests: %v then %v", acmeToken, tok)
	}
	x = e.mustDoCfg(as(map[string]any{"tenant": "globex"}), jsonReq("POST", "/people", "", person), 201)
	gid := field(t, x.client.body, "id").(string)
	x = e.mustDoCfg(as(map[string]any{"tenant": "globex", "scope": "analytics"}), jsonReq("GET", "/people/"+gid, "", ""), 200)
	if tok, _ := field(t, x.client.body, "ssn").(string); !tokenRE.MatchString(tok) || tok == acmeToken {
		t.Errorf("globex's token %q for the same SSN, acme's %q: want a different token", tok, acmeToken)
	}
	// Another tenant, whatever its role, still cannot read acme's record (its key id differs).
	if x := e.do(as(map[string]any{"tenant": "globex", "role": "billing"}), jsonReq("GET", "/people/"+id, "", "")); x.client.status != 502 ||
		bytes.Contains(x.client.body, []byte("4111")) {
		t.Errorf("globex billing read acme's record: %d %s", x.client.status, x.client.body)
	}

	rec.mu.Lock()
	defer rec.mu.Unlock()
	for k, want := range map[string]int{
		"people billing full":         4, // billing and role list: two cards each
		"people support mask:last4":   3, // ssn and two cards
		"people support mask:email":   1,
		"people support redact":       1, // age is a number: a mask redacts it
		"people analytics token":      3,
		"people default redact":       33, // the create replies too
		"people billing mask:last4":   0,
		"people analytics mask:last4": 0,
	} {
		if got := rec.reveals[k]; got != want {
			t.Errorf("reveals %q = %d, want %d (all: %v)", k, got, want, rec.reveals)
		}
	}
	audits := strings.Join(rec.audits, "\n")
	for _, want := range []string{
		`people tenant-acme [{"Field":"$.ssn","Rule":"support","Action":"mask:last4","N":1},{"Field":"$.cards[*].number","Rule":"support","Action":"mask:last4","N":2},` +
			`{"Field":"$.contact.email","Rule":"support","Action":"mask:email","N":1},{"Field":"$.age","Rule":"support","Action":"redact","N":1}]`,
		` people tenant-acme [{"Field":"$.ssn","Rule":"default","Action":"redact","N":1}`,
	} {
		if !strings.Contains(audits, want) {
			t.Errorf("audit records lack %s:\n%s", want, audits)
		}
	}
	for _, secret := range []string{"6789", "4111", "ada.l", "36", acmeToken} {
		// The request ids (random hex, first on each line) are not checked: they may hold digits.
		if strings.Contains(regexp.MustCompile(`(?m)^\S* `).ReplaceAllString(audits, ""), secret) {
			t.Errorf("an audit record holds %q:\n%s", secret, audits)
		}
	}
}

// TestRevealEdgeValues: masks on escaped and Unicode strings and on values shorter than what
// the mask keeps, through the server; redact_as; ciphertext; legacy plaintext under reveal.
func TestRevealEdgeValues(t *testing.T) {
	src := strings.NewReplacer("default: redact", "default: redact\n    redact_as: \"[hidden]\"", "name: people", "name: people\nlegacy_plaintext: pass",
		`fields: {"$.cards[*].number": full}`, `fields: {"$.cards[*].number": ciphertext, "$.ssn": full}`).Replace(revealPolicyYAML)
	e := newTestEnvWith(t, Options{}, revealPolicies(t, src))
	support := envoyCfg{jwt: map[string]any{"tenant": "acme", "role": "support"}}
	for _, tc := range []struct{ name, body, want string }{
		{"short", `{"ssn":"123","contact":{"email":"j@x.io"}}`, `{"id":"ID","ssn":"***","contact":{"email":"*@x.io"}}`},
		{"unicode", `{"ssn":"ÄÖÜ-ßéèê😀","contact":{"email":"élodie@exämple.fr"}}`, `{"id":"ID","ssn":"*****éèê😀","contact":{"email":"é*****@exämple.fr"}}`},
		{"escaped", `{"ssn":"12\u00334\"\\\n\u2028"}`, `{"id":"ID","ssn":"****\"\\\n\u2028"}`},
		{"null and number", `{"ssn":null,"age":7}`, `{"id":"ID","ssn":null,"age":"[hidden]"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := e.mustDoCfg(support, jsonReq("POST", "/people", "", tc.body), 201)
			id := field(t, x.client.body, "id").(string)
			x = e.mustDoCfg(support, jsonReq("GET", "/people/"+id, "", ""), 200)
			want := strings.Replace(tc.want, "ID", id, 1)
			if string(x.client.body) != want || !json.Valid(x.client.body) {
				t.Errorf("got  %s\nwant %s", x.client.body, want)
			}
		})
	}
	t.Run("ciphertext and full", func(t *testing.T) {
		billing := envoyCfg{jwt: map[string]any{"tenant": "acme", "role": "billing"}}
		x := e.mustDoCfg(billing, jsonReq("POST", "/people", "", person), 201)
		id := field(t, x.client.body, "id").(string)
		stored, _ := e.app.Record("people", id)
		x = e.mustDoCfg(billing, jsonReq("GET", "/people/"+id, "", ""), 200)
		if got, want := field(t, x.client.body, "cards.0.number"), field(t, stored, "cards.0.number"); got != want {
			t.Errorf("ciphertext action: %v, want the stored %v", got, want)
		}
		if got := field(t, x.client.body, "ssn"); got != "123-45-6789" {
			t.Errorf("full: %v", got)
		}
	})
	t.Run("legacy plaintext is revealed like a decrypted value", func(t *testing.T) {
		e.app.Put("people", "legacy", []byte(`{"id":"legacy","ssn":"987-65-4321","cards":[{"number":"4000000000000002"}]}`))
		x := e.mustDoCfg(support, jsonReq("GET", "/people/legacy", "", ""), 200)
		if got, want := string(x.client.body), `{"id":"legacy","ssn":"*******4321","cards":[{"number":"************0002"}]}`; got != want {
			t.Errorf("got  %s\nwant %s", got, want)
		}
		x = e.mustDoCfg(envoyCfg{jwt: map[string]any{"tenant": "acme", "role": "billing"}}, jsonReq("GET", "/people/legacy", "", ""), 200)
		if got, want := string(x.client.body), `{"id":"legacy","ssn":"987-65-4321","cards":[{"number":"[hidden]"}]}`; got != want {
			t.Errorf("ciphertext of a legacy plaintext: got %s, want %s", got, want)
		}
	})
}

// TestRevealNotJSON: a plaintext that authenticates but is not JSON (rkms never seals one) fails
// the response under every action that reads it, as without reveal rules, even where masks and
// tokens skip json.Valid for speed.
func TestRevealNotJSON(t *testing.T) {
	e := newTestEnvWith(t, Options{}, revealPolicies(t, revealPolicyYAML))
	k, err := e.keys.Current(context.Background(), "tenant-acme")
	if err != nil {
		t.Fatal(err)
	}
	for _, pt := range []string{`"abc`, `"a"b"`, `"a` + "\x01" + `"`, `abc`, `12 34`, `"\x"`} {
		for _, role := range []map[string]any{{"role": "support"}, {"scope": "analytics"}, {"role": "billing"}} {
			ssn, err := envelope.Seal(nil, k, envelope.Randomized, "ssn", nil, []byte(pt))
			if err != nil {
				t.Fatal(err)
			}
			card, err := envelope.Seal(nil, k, envelope.Randomized, "number", nil, []byte(pt))
			if err != nil {
				t.Fatal(err)
			}
			e.app.Put("people", "bad", []byte(`{"id":"bad","ssn":"`+string(ssn)+`","cards":[{"number":"`+string(card)+`"}]}`))
			claims := map[string]any{"tenant": "acme"}
			for k, v := range role {
				claims[k] = v
			}
			if x := e.do(envoyCfg{jwt: claims}, jsonReq("GET", "/people/bad", "", "")); x.client.status != 502 {
				t.Errorf("plaintext %q as %v: %d %s, want 502", pt, role, x.client.status, x.client.body)
			}
		}
	}
}

// TestRevealStreamed: a streamed NDJSON response (duplex.go) is revealed value by value like a
// buffered one, here for a caller chosen by a trusted header, chunks cut inside ciphertexts;
// the reveals are counted when the stream ends.
func TestRevealStreamed(t *testing.T) {
	rec := &revealRecorder{reveals: map[string]int{}}
	keys := newFakeKeys()
	pols := []policy.Config{{Name: "exports", KeyID: "tenant-{header:x-tenant-id}", DecryptOnly: true, TrustedHeaders: []string{"x-tenant-id", "x-role"},
		Response: policy.Direction{Stream: true, Decrypt: []policy.Field{{Path: "$.ssn"}},
			Reveal: &policy.Reveal{Default: "mask:last4", Rules: []policy.RevealRule{
				{Name: "auditor", When: policy.RevealWhen{Header: map[string]string{"x-role": "auditor"}}, Fields: map[string]string{"$.ssn": "full"}}}}}}}
	s, err := NewServer(pols, keys, Options{Observer: rec})
	if err != nil {
		t.Fatal(err)
	}
	k, err := keys.Current(context.Background(), "tenant-t1")
	if err != nil {
		t.Fatal(err)
	}
	var in string
	for _, v := range []string{"123-45-6789", "987-65-4321"} {
		ct, err := envelope.Seal(nil, k, envelope.Randomized, "ssn", nil, []byte(`"`+v+`"`))
		if err != nil {
			t.Fatal(err)
		}
		in += `{"ssn":"` + string(ct) + `"}` + "\n"
	}
	for _, tc := range []struct{ role, want string }{
		{"", `{"ssn":"*******6789"}` + "\n" + `{"ssn":"*******4321"}` + "\n"},
		{"auditor", `{"ssn":"123-45-6789"}` + "\n" + `{"ssn":"987-65-4321"}` + "\n"},
	} {
		c := duplexClient(t, s, "exports")
		h := hdrs{{":method", "GET"}, {":path", "/exports"}, {"x-tenant-id", "t1"}}
		if tc.role != "" {
			h = append(h, [2]string{"x-role", tc.role})
		}
		for _, m := range []*extprocv3.ProcessingRequest{
			{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{Headers: h.proto(), EndOfStream: true}}},
			respHeaders("application/x-ndjson"),
		} {
			if _, err := roundTrip(t, c, m); err != nil {
				t.Fatal(err)
			}
		}
		var out []byte
		for _, cut := range [][2]int{{0, 20}, {20, 90}, {90, len(in)}} {
			r, err := roundTrip(t, c, respChunk(in[cut[0]:cut[1]], cut[1] == len(in)))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, streamedOf(t, r).GetBody()...)
		}
		if string(out) != tc.want {
			t.Errorf("role %q: got %q, want %q", tc.role, out, tc.want)
		}
		_ = c.CloseSend()
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.reveals["exports default mask:last4"] != 2 || rec.reveals["exports auditor full"] != 2 {
		t.Errorf("reveals %v", rec.reveals)
	}
}
