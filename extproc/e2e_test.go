package extproc

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/internal/testing/envoytest"
)

// TestEnvoyIngress runs envoy/ingress.yaml in the real Envoy in front of the recorder app, with
// this server and a real keyring behind it. The tenant is the claim of the token Envoy
// verified (policy key id tenant-{jwt:tenant}).
func TestEnvoyIngress(t *testing.T) {
	testenv.Integration(t)
	s := startStack(t, "ingress.yaml", Options{})
	tenant := envoytest.Bearer(t, "t1")
	wantRecord := `{"id":"1",` + patient[1:]

	t.Run("create encrypts tagged fields only", func(t *testing.T) {
		r := s.do(t, "POST", "/patients", patient, tenant...)
		if r.status != 201 || string(r.body) != wantRecord {
			t.Fatalf("status %d body %s", r.status, r.body)
		}
		checkLength(t, r)
		stored, _ := s.app.Record("patients", "1")
		for _, p := range []string{"ssn", "contact.email", "cards.0.number", "cards.1.number"} {
			if v, _ := field(t, stored, p).(string); !envelope.IsCiphertext([]byte(v)) {
				t.Errorf("app holds %s = %q, want a ciphertext", p, v)
			}
		}
		if field(t, stored, "name") != "Ada" || field(t, stored, "cards.1.exp") != "01/29" {
			t.Errorf("untagged fields changed: %s", stored)
		}
		recv, sent, _ := s.streams.find("/patients")
		wantRecv := []string{"request_headers", "request_body(eos=true)", "response_headers", "response_body(eos=true)"}
		if !slices.Equal(recv, wantRecv) || len(sent) != len(recv) {
			t.Errorf("ext_proc messages %v answered %v, want %v", recv, sent, wantRecv)
		}
	})
	t.Run("bodiless read and list decrypt", func(t *testing.T) {
		for path, want := range map[string]string{"/patients/1": wantRecord, "/patients": `{"items":[` + wantRecord + `]}`} {
			r := s.do(t, "GET", path, "", tenant...)
			if r.status != 200 || string(r.body) != want {
				t.Errorf("GET %s: status %d body %s", path, r.status, r.body)
			}
			checkLength(t, r)
			recv, _, _ := s.streams.find(path)
			if want := []string{"request_headers(eos)", "response_headers", "response_body(eos=true)"}; !slices.Equal(recv, want) {
				t.Errorf("GET %s: ext_proc messages %v, want %v", path, recv, want)
			}
		}
	})
	t.Run("route without policy is untouched", func(t *testing.T) {
		body := "{ \"ssn\" : \"123-45-6789\",\n\t\"x\":[1, 2 ,3] }"
		r := s.do(t, "POST", "/notes", body)
		got := s.app.Received()
		if r.status != 201 || got[len(got)-1].Body == nil || string(got[len(got)-1].Body) != body {
			t.Fatalf("status %d, app got %q", r.status, got[len(got)-1].Body)
		}
		if want := `{"id":"2",` + body[1:]; string(r.body) != want {
			t.Errorf("client got %q, want %q", r.body, want)
		}
		recv, _, _ := s.streams.find("/notes")
		if !slices.Equal(recv, []string{"request_headers"}) {
			t.Errorf("ext_proc messages for a request without policy: %v, want only request_headers (mode_override)", recv)
		}
		before := s.streams.count()
		if r := s.do(t, "GET", "/healthz", ""); r.status != 200 || s.streams.count() != before {
			t.Errorf("/healthz (ext_proc disabled): status %d, streams %d -> %d", r.status, before, s.streams.count())
		}
	})
	t.Run("failures", func(t *testing.T) {
		stored, _ := s.app.Record("patients", "1")
		ssn, _ := field(t, stored, "ssn").(string)
		i := len(ssn) / 2
		tampered := bytes.Replace(stored, []byte(ssn), []byte(ssn[:i]+string("AB"[boolInt(ssn[i] == 'A')])+ssn[i+1:]), 1)
		s.app.Put("patients", "99", bytes.Replace(tampered, []byte(`"id":"1"`), []byte(`"id":"99"`), 1))
		s.app.Put("patients", "deep", []byte(deepJSON(1001)))
		big := `{"ssn":"123-45-6789","pad":"` + strings.Repeat("x", 1536<<10) + `"}`
		// 330 KB that grows past 1 MiB once its 11000 card numbers are encrypted.
		growing := `{"cards":[` + strings.Repeat(`{"number":"4111111111111111"},`, 10999) + `{"number":"4111111111111111"}]}`
		for _, tc := range []struct {
			name, method, path, body string
			headers                  []string
			setup, undo              func()
			want                     int
			wantRecv                 []string // messages Envoy sends to ext_proc, when they matter
			envoyReply               bool     // the reply is Envoy's own, not an rkms JSON error
			wantMsg                  string   // the rkms JSON error, when it matters
		}{
			{name: "invalid json", method: "POST", path: "/patients", body: `{"ssn":"123-45-6789"`, headers: tenant, want: 400,
				wantRecv: []string{"request_headers", "request_body(eos=true)"}, wantMsg: "request body is not valid JSON"},
			{name: "request nested deeper than the limit", method: "POST", path: "/patients", body: deepJSON(1001), headers: tenant, want: 400,
				wantMsg: "request body is nested deeper than the JSON nesting limit (1000 levels)"},
			{name: "response nested deeper than the limit", method: "GET", path: "/patients/deep", headers: tenant, want: 502,
				wantMsg: "response body is nested deeper than the JSON nesting limit (1000 levels)"},
			// jwt_authn refuses a request without a token before rkms (a JSON local reply).
			{name: "missing token", method: "POST", path: "/patients", body: patient, want: 401},
			{name: "missing token on read", method: "GET", path: "/patients/1", want: 401},
			{name: "not json", method: "POST", path: "/patients", body: patient, headers: append([]string{"content-type", "text/plain"}, tenant...), want: 415},
			// The buffer filter before ext_proc (envoy/README.md, "Resource limits") answers 413
			// itself: rkms sees the request headers and (the pipelined filter serves /patients)
			// an end of body that nothing follows, and Envoy's local reply (text, no tagged
			// field) does not go through ext_proc's response path.
			{name: "body over the buffer limit", method: "POST", path: "/patients", body: big, headers: tenant, want: 413,
				wantRecv: []string{"request_headers", "request_body(eos=true)"}, envoyReply: true},
			{name: "body over the buffer limit once encrypted", method: "POST", path: "/patients", body: growing, headers: tenant, want: 413,
				wantRecv: []string{"request_headers", "request_body(eos=true)"}},
			{name: "keyring unavailable", method: "POST", path: "/patients", body: patient, headers: envoytest.Bearer(t, "t-new"),
				setup: func() { s.store.SetUnavailable(true) }, undo: func() { s.store.SetUnavailable(false) }, want: 503},
			{name: "tampered ciphertext", method: "GET", path: "/patients/99", headers: tenant, want: 502,
				wantRecv: []string{"request_headers(eos)", "response_headers", "response_body(eos=true)"}, wantMsg: authFailed},
			{name: "cross-tenant read", method: "GET", path: "/patients/1", headers: envoytest.Bearer(t, "t2"), want: 502, wantMsg: authFailed},
			// The client's x-tenant-id is removed before rkms: the token's tenant decides.
			{name: "cross-tenant read claiming the tenant", method: "GET", path: "/patients/1",
				headers: append(envoytest.Bearer(t, "t2"), "x-tenant-id", "t1"), want: 502},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if tc.setup != nil {
					tc.setup()
					defer tc.undo()
				}
				r := s.do(t, tc.method, tc.path, tc.body, tc.headers...)
				if r.status != tc.want {
					t.Fatalf("status %d, want %d: %s", r.status, tc.want, r.body)
				}
				if recv, _, _ := s.streams.find(tc.path); tc.wantRecv != nil && !slices.Equal(recv, tc.wantRecv) {
					t.Errorf("ext_proc messages %v, want %v", recv, tc.wantRecv)
				}
				if !tc.envoyReply {
					var e struct{ Error string }
					if json.Unmarshal(r.body, &e) != nil || e.Error == "" || r.header.Get("Content-Type") != "application/json" {
						t.Errorf("error reply %q (%s) is not a JSON error", r.body, r.header.Get("Content-Type"))
					}
					if tc.wantMsg != "" && e.Error != tc.wantMsg {
						t.Errorf("error %q, want %q", e.Error, tc.wantMsg)
					}
				}
				for _, secret := range patientSecrets {
					if bytes.Contains(r.body, []byte(secret)) {
						t.Errorf("reply leaks %q", secret)
					}
				}
			})
		}
	})
	t.Run("no plaintext reached the app", func(t *testing.T) {
		for _, rcv := range s.app.Received() {
			if strings.HasPrefix(rcv.Path, "/notes") {
				continue
			}
			for _, secret := range patientSecrets {
				if bytes.Contains(rcv.Body, []byte(secret)) {
					t.Errorf("app received plaintext %q in %s %s", secret, rcv.Method, rcv.Path)
				}
			}
			if ae := rcv.Header.Get("Accept-Encoding"); strings.HasPrefix(rcv.Path, "/patients") && ae != "" {
				t.Errorf("accept-encoding %q reached the app on %s", ae, rcv.Path)
			}
		}
	})
}

// TestEnvoyEgress runs envoy/egress.yaml: the app sends ciphertext out, the external API sees
// plaintext, and its reply comes back sealed.
func TestEnvoyEgress(t *testing.T) {
	testenv.Integration(t)
	s := startStack(t, "egress.yaml", Options{}) // the recorder plays the external API
	k, err := StackKeys(s.keyring).Current(context.Background(), "partner-acme")
	if err != nil {
		t.Fatal(err)
	}
	ct, err := envelope.Seal(nil, k, envelope.Randomized, "token", nil, []byte(`"tok_live_123"`))
	if err != nil {
		t.Fatal(err)
	}
	r := s.do(t, "POST", "/partner", `{"token":"`+string(ct)+`","amount":5}`, "x-partner", "acme")
	if r.status != 201 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	got := s.app.Received()
	if len(got) != 1 || string(got[0].Body) != `{"token":"tok_live_123","amount":5}` {
		t.Fatalf("external API got %q", got[0].Body)
	}
	tok, _ := field(t, r.body, "token").(string)
	if !envelope.IsCiphertext([]byte(tok)) || bytes.Contains(r.body, []byte("tok_live_123")) {
		t.Errorf("the app got plaintext back: %s", r.body)
	}
	checkLength(t, r)
	if r := s.do(t, "POST", "/partner", `{"token":"`+string(ct)+`"}`, "x-partner", "other"); r.status != 400 || len(s.app.Received()) != 1 {
		t.Errorf("another partner's token: status %d, API calls %d", r.status, len(s.app.Received()))
	}
}

func checkLength(t *testing.T, r reply) {
	t.Helper()
	if cl := r.header.Get("Content-Length"); cl != strconv.Itoa(len(r.body)) {
		t.Errorf("content-length %q for a %d-byte body", cl, len(r.body))
	}
}
