package extproc

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/extproc/policy"
	"github.com/rkms/rkms/internal/testing/env"
)

const patient = `{"name":"Ada","ssn":"123-45-6789","contact":{"email":"ada@example.com","phone":"555-0100"},` +
	`"cards":[{"number":"4111111111111111","exp":"12/30"},{"number":"5500000000000004","exp":"01/29"}]}`

var patientSecrets = []string{"123-45-6789", "ada@example.com", "4111111111111111", "5500000000000004"}

func TestRoundTrip(t *testing.T) {
	e := newTestEnv(t, Options{})
	x := e.mustDo(jsonReq("POST", "/patients", "t1", patient), 201)
	e.noPlaintextReached(patientSecrets...)
	stored, ok := e.app.Record("patients", "1")
	if !ok {
		t.Fatal("record not stored")
	}
	for _, p := range []string{"ssn", "contact.email", "cards.0.number", "cards.1.number"} {
		v, _ := field(t, stored, p).(string)
		if !envelope.IsCiphertext([]byte(v)) {
			t.Errorf("stored %s = %q, want a ciphertext", p, v)
		}
		h, err := envelope.Parse([]byte(v))
		if err != nil || h.KeyID != "tenant-t1" || h.Mode != envelope.Randomized {
			t.Errorf("stored %s header %+v, %v", p, h, err)
		}
	}
	for p, want := range map[string]string{"name": "Ada", "contact.phone": "555-0100", "cards.0.exp": "12/30"} {
		if got := field(t, stored, p); got != want {
			t.Errorf("stored %s = %v, want plaintext %q", p, got, want)
		}
	}
	if ae, _ := x.upstream.headers.get("accept-encoding"); ae != "" {
		t.Errorf("accept-encoding %q reached the app on a route that decrypts responses", ae)
	}
	wantRecord := `{"id":"1",` + patient[1:]
	if string(x.client.body) != wantRecord {
		t.Errorf("create reply\n got %s\nwant %s", x.client.body, wantRecord)
	}

	for _, tc := range []struct {
		name, path string
		want       string
	}{
		{"single", "/patients/1", wantRecord},
		{"list", "/patients", `{"items":[` + wantRecord + `]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := e.mustDo(jsonReq("GET", tc.path, "t1", ""), 200)
			if string(x.client.body) != tc.want {
				t.Errorf("got %s\nwant %s", x.client.body, tc.want)
			}
			if x.messages != 3 { // request headers (end_of_stream), response headers, response body
				t.Errorf("%d ext_proc messages, want 3", x.messages)
			}
		})
	}
}

func TestPassThrough(t *testing.T) {
	body := `{"ssn":"123-45-6789", "note" : "kept byte for byte" }`
	for _, tc := range []struct {
		name         string
		cfg          envoyCfg
		wantMessages int
	}{
		{"mode override", envoyCfg{}, 1},
		{"no mode override", envoyCfg{noModeOverride: true}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, Options{})
			x := e.do(tc.cfg, jsonReq("POST", "/notes", "", body))
			if x.client.status != 201 || !bytes.Equal(x.upstream.body, []byte(body)) {
				t.Fatalf("status %d, app got %s", x.client.status, x.upstream.body)
			}
			if want := `{"id":"1",` + body[1:]; string(x.client.body) != want {
				t.Errorf("client got %s, want %s", x.client.body, want)
			}
			if x.messages != tc.wantMessages {
				t.Errorf("%d ext_proc messages, want %d", x.messages, tc.wantMessages)
			}
			if _, ok := x.upstream.headers.get("content-length"); !ok {
				t.Error("content-length removed from an untouched request")
			}
		})
	}
}

// storedPatient creates patient 1 for tenant t1 and returns its stored bytes and the
// ciphertexts of ssn and contact.email.
func storedPatient(t *testing.T, e *testEnv) (rec []byte, ssn, email string) {
	t.Helper()
	e.mustDo(jsonReq("POST", "/patients", "t1", patient), 201)
	rec, _ = e.app.Record("patients", "1")
	ssn, _ = field(t, rec, "ssn").(string)
	email, _ = field(t, rec, "contact.email").(string)
	return rec, ssn, email
}

func TestFailures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    Options
		cfg     envoyCfg
		setup   func(t *testing.T, e *testEnv)
		req     httpReq
		reqFn   func(e *testEnv) httpReq // instead of req, when the request depends on setup
		want    int
		wantMsg string
		atApp   bool // refused in the response phase: the app saw the request
	}{
		{name: "invalid json", req: jsonReq("POST", "/patients", "t1", `{"ssn":"123-45-6789",`), want: 400, wantMsg: "not valid JSON"},
		{name: "request nested deeper than the limit", req: jsonReq("POST", "/patients", "t1", deepJSON(1001)),
			want: 400, wantMsg: "request body is nested deeper than the JSON nesting limit (1000 levels)"},
		{name: "response nested deeper than the limit", setup: func(t *testing.T, e *testEnv) {
			e.app.Put("patients", "1", []byte(deepJSON(1001)))
		}, req: jsonReq("GET", "/patients/1", "t1", ""), want: 502,
			wantMsg: "response body is nested deeper than the JSON nesting limit (1000 levels)", atApp: true},
		{name: "json with trailing garbage", req: jsonReq("POST", "/patients", "t1", `{"ssn":"123-45-6789"} x`), want: 400},
		{name: "not json content-type", req: func() httpReq {
			r := jsonReq("POST", "/patients", "t1", patient)
			r.headers = r.headers.set("content-type", "text/plain")
			return r
		}(), want: 415},
		{name: "no content-type", req: httpReq{method: "POST", path: "/patients", headers: hdrs{{"x-tenant-id", "t1"}}, body: []byte(patient)}, want: 415},
		{name: "compressed request in an unknown coding", req: func() httpReq {
			r := jsonReq("POST", "/patients", "t1", patient)
			r.headers = append(r.headers, [2]string{"content-encoding", "exi"})
			return r
		}(), want: 415},
		{name: "missing tenant on create", req: jsonReq("POST", "/patients", "", patient), want: 400, wantMsg: "x-tenant-id"},
		{name: "missing tenant on read", req: jsonReq("GET", "/patients/1", "", ""), want: 400},
		{name: "tenant header twice", req: func() httpReq {
			r := jsonReq("POST", "/patients", "t1", patient)
			r.headers = append(r.headers, [2]string{"x-tenant-id", "t2"})
			return r
		}(), want: 400},
		{name: "key id breaks the rule", req: jsonReq("POST", "/patients", "t 1", patient), want: 400, wantMsg: "key id"},
		{name: "key id too long", req: jsonReq("POST", "/patients", strings.Repeat("a", 250), patient), want: 400},
		{name: "already encrypted", setup: func(t *testing.T, e *testEnv) { storedPatient(t, e) },
			reqFn: func(e *testEnv) httpReq {
				rec, _ := e.app.Record("patients", "1")
				return jsonReq("POST", "/patients", "t1", string(rec))
			}, want: 400, wantMsg: "already encrypted"},
		{name: "keys unavailable on create", setup: func(t *testing.T, e *testEnv) { e.keys.set(true, 0) },
			req: jsonReq("POST", "/patients", "t1", patient), want: 503},
		{name: "keys too slow", opts: Options{KeyTimeout: 50 * time.Millisecond},
			setup: func(t *testing.T, e *testEnv) { e.keys.set(false, time.Second) },
			req:   jsonReq("POST", "/patients", "t1", patient), want: 503},
		{name: "keys unavailable on read", setup: func(t *testing.T, e *testEnv) { storedPatient(t, e); e.keys.set(true, 0) },
			req: jsonReq("GET", "/patients/1", "t1", ""), want: 503, atApp: true},
		{name: "tampered ciphertext", setup: func(t *testing.T, e *testEnv) {
			rec, ssn, _ := storedPatient(t, e)
			i := len(ssn) / 2
			flipped := ssn[:i] + string("AB"[boolInt(ssn[i] == 'A')]) + ssn[i+1:]
			e.app.Put("patients", "1", bytes.Replace(rec, []byte(ssn), []byte(flipped), 1))
		}, req: jsonReq("GET", "/patients/1", "t1", ""), want: 502, wantMsg: authFailed, atApp: true},
		{name: "truncated ciphertext", setup: func(t *testing.T, e *testEnv) {
			rec, ssn, _ := storedPatient(t, e)
			e.app.Put("patients", "1", bytes.Replace(rec, []byte(ssn), []byte(ssn[:20]), 1))
		}, req: jsonReq("GET", "/patients", "t1", ""), want: 502, wantMsg: authFailed, atApp: true},
		{name: "cross-tenant read", setup: func(t *testing.T, e *testEnv) { storedPatient(t, e) },
			req: jsonReq("GET", "/patients/1", "t2", ""), want: 502, wantMsg: authFailed, atApp: true},
		{name: "cross-tenant list", setup: func(t *testing.T, e *testEnv) { storedPatient(t, e) },
			req: jsonReq("GET", "/patients", "t2", ""), want: 502, atApp: true},
		{name: "value moved to another label", setup: func(t *testing.T, e *testEnv) {
			rec, ssn, email := storedPatient(t, e)
			e.app.Put("patients", "1", bytes.Replace(rec, []byte(email), []byte(ssn), 1))
		}, req: jsonReq("GET", "/patients/1", "t1", ""), want: 502, wantMsg: authFailed, atApp: true},
		{name: "key deleted", setup: func(t *testing.T, e *testEnv) { storedPatient(t, e); e.keys.remove("tenant-t1") },
			req: jsonReq("GET", "/patients/1", "t1", ""), want: 502, atApp: true},
		{name: "body over MaxBodyBytes", opts: Options{MaxBodyBytes: 64}, cfg: envoyCfg{bufferLimit: 1 << 20},
			req: jsonReq("POST", "/patients", "t1", patient), want: 413},
		{name: "body over Envoy's buffer", cfg: envoyCfg{bufferLimit: 64},
			req: jsonReq("POST", "/patients", "t1", patient), want: 413},
		{name: "encrypted body over MaxBodyBytes", opts: Options{MaxBodyBytes: len(patient) + 100},
			req: jsonReq("POST", "/patients", "t1", patient), want: 413, wantMsg: "once encrypted"},
		{name: "encrypted body over Envoy's buffer", opts: Options{MaxBodyBytes: 1 << 20}, cfg: envoyCfg{bufferLimit: len(patient) + 100},
			req: jsonReq("POST", "/patients", "t1", patient), want: 413},
		{name: "unknown policy named by the route", cfg: envoyCfg{metadata: map[string]string{PolicyMetadataKey: "nope"}},
			req: jsonReq("POST", "/anything", "t1", patient), want: 500},
		{name: "key id from a missing body", cfg: envoyCfg{metadata: map[string]string{PolicyMetadataKey: "orders"}},
			req: jsonReq("GET", "/orders/1", "", ""), want: 400},
		{name: "key id from a body without it", cfg: envoyCfg{metadata: map[string]string{PolicyMetadataKey: "orders"}},
			req: jsonReq("POST", "/orders", "", `{"payment":{"pan":"4111111111111111"}}`), want: 400},
		{name: "key id from a non-scalar", cfg: envoyCfg{metadata: map[string]string{PolicyMetadataKey: "orders"}},
			req: jsonReq("POST", "/orders", "", `{"org":{"a":1},"payment":{"pan":"4111111111111111"}}`), want: 400},
		{name: "key id path segment missing", req: jsonReq("POST", "/accounts", "", `{"iban":"DE89370400440532013000"}`), want: 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, tc.opts)
			if tc.setup != nil {
				tc.setup(t, e)
			}
			req := tc.req
			if tc.reqFn != nil {
				req = tc.reqFn(e)
			}
			before := len(e.app.Received())
			x := e.do(tc.cfg, req)
			if x.client.status != tc.want {
				t.Fatalf("status %d, want %d (body %s)", x.client.status, tc.want, x.client.body)
			}
			if x.client.status != 413 || tc.cfg.bufferLimit == 0 {
				if msg := errorMessage(t, x); !strings.Contains(msg, tc.wantMsg) {
					t.Errorf("error %q, want it to contain %q", msg, tc.wantMsg)
				}
			}
			if reached := len(e.app.Received()) != before; reached != tc.atApp || (x.upstream != nil) != tc.atApp {
				t.Errorf("app reached: %v, want %v", reached, tc.atApp)
			}
			for _, s := range patientSecrets {
				if bytes.Contains(x.client.body, []byte(s)) {
					t.Errorf("error reply leaks %q", s)
				}
			}
			e.noPlaintextReached(patientSecrets...)
		})
	}
}

// deepJSON is a document nested n levels deep: n-1 arrays around a patient record (the record
// itself is one level).
func deepJSON(n int) string {
	return strings.Repeat("[", n-1) + patient + strings.Repeat("]", n-1)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestMetadataSelectsPolicy(t *testing.T) {
	e := newTestEnv(t, Options{})
	cfg := envoyCfg{metadata: map[string]string{PolicyMetadataKey: "orders"}}
	body := `{"org":"acme","payment":{"pan":"4111111111111111","brand":"visa"}}`
	x := e.do(cfg, jsonReq("POST", "/orders", "", body))
	if x.client.status != 201 {
		t.Fatalf("status %d: %s", x.client.status, x.client.body)
	}
	e.noPlaintextReached("4111111111111111")
	stored, _ := e.app.Record("orders", "1")
	ct, _ := field(t, stored, "payment.pan").(string)
	if h, err := envelope.Parse([]byte(ct)); err != nil || h.KeyID != "org-acme" {
		t.Fatalf("stored pan %q: header %+v, %v", ct, h, err)
	}
	if string(x.client.body) != `{"id":"1",`+body[1:] {
		t.Errorf("client got %s", x.client.body)
	}
	// Without the route's metadata no policy applies to /orders: the ciphertext stays.
	x = e.do(envoyCfg{}, jsonReq("PUT", "/orders/1", "", "{"+string(stored[len(`{"id":"1",`):])))
	if !bytes.Contains(x.client.body, []byte(ct)) {
		t.Errorf("without metadata the reply changed: %s", x.client.body)
	}
}

func TestDeterministicAndPathKey(t *testing.T) {
	e := newTestEnv(t, Options{})
	var cts []string
	for range 2 {
		x := e.mustDo(jsonReq("PUT", "/accounts/a1", "", `{"iban":"DE89370400440532013000"}`), 200)
		if want := `{"id":"a1","iban":"DE89370400440532013000"}`; string(x.client.body) != want {
			t.Errorf("client got %s, want %s", x.client.body, want)
		}
		ct, _ := field(t, x.upstream.body, "iban").(string)
		cts = append(cts, ct)
	}
	h, err := envelope.Parse([]byte(cts[0]))
	if err != nil || h.Mode != envelope.Deterministic || h.KeyID != "acct:a1" {
		t.Fatalf("header %+v, %v", h, err)
	}
	if cts[0] != cts[1] {
		t.Errorf("deterministic mode gave two ciphertexts: %s %s", cts[0], cts[1])
	}
	e.noPlaintextReached("DE89370400440532013000")
}

func TestRotationAndLegacyValues(t *testing.T) {
	legacy := `{"id":"3","ssn":"333-33-3333","contact":{"email":null},"cards":[{"number":42}]}`
	t.Run("rotation", func(t *testing.T) {
		e := newTestEnv(t, Options{})
		e.mustDo(jsonReq("POST", "/patients", "t1", `{"ssn":"111-11-1111"}`), 201)
		e.keys.rotate("tenant-t1")
		e.mustDo(jsonReq("POST", "/patients", "t1", `{"ssn":"222-22-2222"}`), 201)
		x := e.mustDo(jsonReq("GET", "/patients", "t1", ""), 200)
		if want := `{"items":[{"id":"1","ssn":"111-11-1111"},{"id":"2","ssn":"222-22-2222"}]}`; string(x.client.body) != want {
			t.Errorf("got  %s\nwant %s", x.client.body, want)
		}
		rec2, _ := e.app.Record("patients", "2")
		if h, _ := envelope.Parse([]byte(field(t, rec2, "ssn").(string))); h.KeyVersion != 2 {
			t.Errorf("record 2 sealed with version %d, want 2", h.KeyVersion)
		}
	})
	t.Run("legacy plaintext refused by default", func(t *testing.T) {
		e := newTestEnv(t, Options{})
		e.app.Put("patients", "3", []byte(legacy))
		x := e.do(envoyCfg{}, jsonReq("GET", "/patients/3", "t1", ""))
		if x.client.status != 502 || errorMessage(t, x) != "field $.ssn holds plaintext where a ciphertext is expected" {
			t.Fatalf("status %d body %s", x.client.status, x.client.body)
		}
		if bytes.Contains(x.client.body, []byte("333-33")) {
			t.Fatalf("the refusal echoes the value: %s", x.client.body)
		}
	})
	t.Run("legacy_plaintext pass", func(t *testing.T) {
		obs := &recObserver{}
		e := newTestEnvWith(t, Options{Observer: obs}, func(ps []policy.Config) []policy.Config { ps[0].LegacyPlaintext = "pass"; return ps })
		e.app.Put("patients", "3", []byte(legacy))
		x := e.mustDo(jsonReq("GET", "/patients/3", "t1", ""), 200)
		if string(x.client.body) != legacy {
			t.Errorf("got  %s\nwant %s", x.client.body, legacy)
		}
		if _, fields, _ := obs.take(); fields["patients/legacy_plaintext"] != 2 {
			n := fields["patients/legacy_plaintext"]
			t.Errorf("legacy_plaintext counted %d, want 2 (ssn and the number; null is not plaintext)", n)
		}
	})
}

func TestEgress(t *testing.T) {
	e := newTestEnv(t, Options{})
	k, err := e.keys.Current(context.Background(), "partner-acme")
	if err != nil {
		t.Fatal(err)
	}
	ct, err := envelope.Seal(nil, k, envelope.Randomized, "token", nil, []byte(`"tok_live_123"`))
	if err != nil {
		t.Fatal(err)
	}
	var apiSaw []byte
	api := func(r *httpReq) httpResp {
		apiSaw = r.body
		return httpResp{status: 200, headers: hdrs{{"content-type", "application/json"}}, body: []byte(`{"token":"tok_live_999","ok":true}`)}
	}
	req := httpReq{method: "POST", path: "/partner/charge", headers: hdrs{{"x-partner", "acme"}, {"content-type", "application/json"}},
		body: []byte(`{"token":"` + string(ct) + `","amount":5}`)}
	x := e.envoy.do(envoyCfg{}, req, api)
	if x.client.status != 200 {
		t.Fatalf("status %d: %s", x.client.status, x.client.body)
	}
	if string(apiSaw) != `{"token":"tok_live_123","amount":5}` {
		t.Errorf("external API got %s", apiSaw)
	}
	tok, _ := field(t, x.client.body, "token").(string)
	if bytes.Contains(x.client.body, []byte("tok_live_999")) || !envelope.IsCiphertext([]byte(tok)) {
		t.Errorf("app got plaintext back: %s", x.client.body)
	}
	// Another partner's ciphertext is refused before it leaves.
	req.headers = req.headers.set("x-partner", "other")
	apiSaw = nil
	x = e.envoy.do(envoyCfg{}, req, api)
	if x.client.status != 400 || apiSaw != nil {
		t.Errorf("cross-partner token: status %d, api saw %s", x.client.status, apiSaw)
	}
	// A response that is not JSON cannot be sealed: refused.
	req.headers = req.headers.set("x-partner", "acme")
	x = e.envoy.do(envoyCfg{}, req, func(*httpReq) httpResp {
		return httpResp{status: 200, headers: hdrs{{"content-type", "text/plain"}}, body: []byte("tok_live_999")}
	})
	if x.client.status != 502 || bytes.Contains(x.client.body, []byte("tok_live_999")) {
		t.Errorf("non-JSON response: status %d body %s", x.client.status, x.client.body)
	}
}

func TestModeOverride(t *testing.T) {
	e := newTestEnv(t, Options{})
	for _, tc := range []struct {
		name string
		req  httpReq
		cfg  envoyCfg
		want *filterv3.ProcessingMode
	}{
		{"no policy", jsonReq("POST", "/notes", "", `{}`), envoyCfg{}, passThroughMode()},
		{"policy with body", jsonReq("POST", "/patients", "t1", `{}`), envoyCfg{}, policyMode(true, true)},
		{"policy without body", jsonReq("GET", "/patients", "t1", ""), envoyCfg{}, policyMode(false, true)},
		{"key id from body, response only", jsonReq("POST", "/x", "", `{"org":"a"}`),
			envoyCfg{metadata: map[string]string{PolicyMetadataKey: "orders"}}, policyMode(true, true)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := e.do(tc.cfg, tc.req)
			if len(x.modes) == 0 || x.modes[0].String() != tc.want.String() {
				t.Errorf("mode override %v, want %v", x.modes, tc.want)
			}
		})
	}
}

// TestStamp: rkms stamps every request it processed, once, on the answer to the last request
// message it handles, so that Envoy's check after ext_proc can refuse requests that skipped it.
func TestStamp(t *testing.T) {
	e := newTestEnv(t, Options{})
	for _, tc := range []struct {
		name string
		req  httpReq
		want []string
	}{
		{"policy with a body", jsonReq("POST", "/patients", "t1", `{"ssn":"1"}`), []string{"request_body policy=patients"}},
		{"policy, bodiless", jsonReq("GET", "/patients/1", "t1", ""), []string{"request_headers policy=patients"}},
		{"no policy", jsonReq("POST", "/notes", "", `{"a":1}`), []string{"request_headers policy="}},
		{"refused", jsonReq("POST", "/patients", "t1", `{"note":"rkms:AAAA"}`), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := e.do(envoyCfg{}, tc.req)
			if !slices.Equal(x.stamps, tc.want) {
				t.Errorf("stamps %q, want %q", x.stamps, tc.want)
			}
		})
	}
}

// TestRefusedShapes: the rows of the "no tagged plaintext reaches the app" issue that the
// server decides alone (the real-Envoy suite repeats them through Envoy).
func TestRefusedShapes(t *testing.T) {
	e := newTestEnv(t, Options{})
	stored := e.mustDo(jsonReq("POST", "/patients", "t1", `{"ssn":"900-00-0001"}`), 201).upstream.body
	ct, _ := field(t, stored, "ssn").(string)
	withCT := func(r httpReq, k, v string) httpReq { r.headers = append(r.headers, [2]string{k, v}); return r }
	for _, tc := range []struct {
		name   string
		req    httpReq
		status int
		msg    string
	}{
		{"upper-case path", jsonReq("POST", "/PATIENTS", "t1", `{"ssn":"900-00-0002"}`), 201, ""},
		{"contact as a list", jsonReq("POST", "/patients", "t1", `{"contact":[{"email":"e@x"}]}`), 400,
			`field $.contact[0].email has the name of tagged field email but is not encrypted by this policy: send it where the policy encrypts it`},
		{"cards nested twice", jsonReq("POST", "/patients", "t1", `{"cards":[[{"number":"4111"}]]}`), 400,
			`field $.cards[0][0].number has the name of tagged field number but is not encrypted by this policy: send it where the policy encrypts it`},
		{"the oracle", jsonReq("POST", "/patients", "t1", `{"items":[{"ssn":"`+ct+`"}]}`), 400, ""},
		{"the oracle, escaped", jsonReq("POST", "/patients", "t1", `{"items":[{"x":"rkms\u003a`+ct[5:]+`"}]}`), 400,
			"a ciphertext is not accepted at $.items[0].x: clients never send ciphertexts"},
		{"the oracle in the query", jsonReq("GET", "/patients?q="+ct, "t1", ""), 400, "a ciphertext is not accepted in the request's path or query"},
		{"utf-7", withCT(httpReq{method: "POST", path: "/patients", headers: hdrs{{"x-tenant-id", "t1"}}, body: []byte(`{"+AHM-sn":"1"}`)},
			"content-type", "application/json; charset=utf-7"), 415, "request charset must be utf-8"},
		{"form body", withCT(httpReq{method: "POST", path: "/patients", headers: hdrs{{"x-tenant-id", "t1"}}, body: []byte(`ssn=1`)},
			"content-type", "application/x-www-form-urlencoded"), 415, "request content-type must be application/json"},
		{"encoded slash", jsonReq("POST", "/%2Fpatients", "t1", `{"ssn":"1"}`), 400, ""},
		{"DELETE with a body is encrypted", jsonReq("DELETE", "/patients/1", "t1", `{"x":{"ssn":"1"}}`), 204, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := e.do(envoyCfg{}, tc.req)
			if x.client.status != tc.status {
				t.Fatalf("status %d, want %d: %s", x.client.status, tc.status, x.client.body)
			}
			if tc.msg != "" {
				if got := errorMessage(t, x); got != tc.msg {
					t.Fatalf("error %q, want %q", got, tc.msg)
				}
			}
			if tc.status >= 400 && x.upstream != nil {
				t.Fatalf("the app received a refused request: %s", x.upstream.body)
			}
		})
	}
	e.noPlaintextReached("900-00-0001", "900-00-0002", "e@x", "4111")
}

// TestLocalReplyBeforeRequestHeaders: Envoy refuses some requests before ext_proc sees them
// (a path it rejects, an upgrade) and runs its own reply through the response path: rkms passes
// it and logs nothing above debug level.
func TestLocalReplyBeforeRequestHeaders(t *testing.T) {
	var logs testenv.LockedBuffer
	srv, err := NewServer(loadPolicies(t), newFakeKeys(), Options{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		t.Fatal(err)
	}
	p := srv.newProcessor(t.Context())
	defer srv.freeProcessor(p)
	for _, req := range []*extprocv3.ProcessingRequest{
		{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{
			Headers: hdrs{{":status", "400"}, {"content-type", "text/plain"}}.proto()}}},
		{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{Body: []byte("Bad Request"), EndOfStream: true}}},
	} {
		resp, err := p.handle(t.Context(), req)
		if err != nil || resp.GetImmediateResponse() != nil {
			t.Fatalf("answer %v, %v; want a plain continue", resp, err)
		}
	}
	if logs.String() != "" {
		t.Errorf("logged above debug level: %s", logs.String())
	}
}
