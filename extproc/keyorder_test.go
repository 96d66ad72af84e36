package extproc

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// lookups returns how many key lookups (Current or Version) the fake has served so far.
func (k *fakeKeys) lookups() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.calls
}

// TestCrossTenantRefusedBeforeKeyLookup: a ciphertext sealed under another key id than the one
// this request computes is refused from its header alone, before any key is fetched. Opening
// it under the request's key would fail authentication anyway; the point is that a request
// must not make rkms fetch (or create, or count a use of) a key for data it cannot read, and
// that the refusal cannot depend on the key service.
func TestCrossTenantRefusedBeforeKeyLookup(t *testing.T) {
	for _, tc := range []struct{ name, path string }{
		{"single record", "/patients/1"},
		{"list", "/patients"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, Options{})
			storedPatient(t, e) // patient 1, sealed under tenant-t1
			// tenant-t2 has a key of its own (version 1, like tenant-t1's): a lookup would succeed.
			if _, err := e.keys.Current(t.Context(), "tenant-t2"); err != nil {
				t.Fatal(err)
			}
			before := e.keys.lookups()
			x := e.do(envoyCfg{}, jsonReq("GET", tc.path, "t2", ""))
			if x.client.status != 502 {
				t.Fatalf("status %d, want 502 (body %s)", x.client.status, x.client.body)
			}
			if msg := errorMessage(t, x); msg != authFailed {
				t.Errorf("error %q, want %q", msg, authFailed)
			}
			if n := e.keys.lookups() - before; n != 0 {
				t.Fatalf("%d key lookups for another tenant's ciphertext, want 0: the key id check must come first", n)
			}
			e.noPlaintextReached(patientSecrets...)
		})
	}
}

// TestContentTypeIsJSON: only application/json and application/*+json are JSON. Media types
// that merely contain "json" are not: rkms would otherwise parse bodies the application reads
// another way (JSON text sequences, NDJSON, JSONP, a text type).
func TestContentTypeIsJSON(t *testing.T) {
	for _, tc := range []struct {
		ct   string
		want bool
	}{
		{"application/json", true},
		{"Application/JSON", true},
		{"application/json; charset=utf-8", true},
		{"application/problem+json", true},
		{"application/vnd.api+json; charset=UTF-8", true},
		{"text/json", false},
		{"text/x-json", false},
		{"application/jsonp", false},
		{"application/json-seq", false},
		{"application/x-ndjson", false},
		{"application/jsonl", false},
		{"application/json+xml", false},
		{"image/svg+json", false},
		{"json", false},
		{"application/xml; note=json", false},
		{"multipart/form-data; boundary=json", false},
		{"", false},
	} {
		h := headerMap{{name: "content-type", value: tc.ct}}
		if got := h.isJSON(); got != tc.want {
			t.Errorf("isJSON(%q) = %v, want %v", tc.ct, got, tc.want)
		}
	}
	// Every value must name JSON.
	h := headerMap{{name: "content-type", value: "application/json"}, {name: "content-type", value: "text/json"}}
	if h.isJSON() {
		t.Error("isJSON with a second, non-JSON content-type value = true")
	}
}

// TestNonJSONMediaTypeRefused: a request with a tagged field and a media type that only contains
// "json" is refused with 415 and never reaches the app.
func TestNonJSONMediaTypeRefused(t *testing.T) {
	for _, ct := range []string{"text/json", "application/x-ndjson", "application/jsonp"} {
		t.Run(ct, func(t *testing.T) {
			e := newTestEnv(t, Options{})
			r := jsonReq("POST", "/patients", "t1", patient)
			r.headers = r.headers.set("content-type", ct)
			x := e.do(envoyCfg{}, r)
			if x.client.status != 415 || x.upstream != nil {
				t.Fatalf("status %d, app reached %v; want 415 and not reached", x.client.status, x.upstream != nil)
			}
			e.noPlaintextReached(patientSecrets...)
		})
	}
}

// TestOneLookupPerVersionPerBody: a body is opened with one key lookup per key version it
// holds, however its fields and versions are interleaved.
func TestOneLookupPerVersionPerBody(t *testing.T) {
	e := newTestEnv(t, Options{})
	rec1, _, _ := storedPatient(t, e) // patient 1 under tenant-t1 version 1
	e.keys.rotate("tenant-t1")
	e.mustDo(jsonReq("POST", "/patients", "t1", patient), 201) // patient 2 under version 2
	e.app.Put("patients", "3", rec1)                           // version 1 again, after version 2
	for _, tc := range []struct {
		path string
		want int
	}{{"/patients/1", 1}, {"/patients/2", 1}, {"/patients", 2}} {
		before := e.keys.lookups()
		x := e.mustDo(jsonReq("GET", tc.path, "t1", ""), 200)
		if n := e.keys.lookups() - before; n != tc.want {
			t.Errorf("GET %s: %d key lookups, want %d (one per version)", tc.path, n, tc.want)
		}
		if !strings.Contains(string(x.client.body), `"ssn":"123-45-6789"`) {
			t.Errorf("GET %s: not opened: %s", tc.path, x.client.body)
		}
	}
}

// TestEscapedCiphertexts: a ciphertext is recognised whatever JSON escapes spell it (rkms looks
// at the string's value, as the application will): sealing refuses one ("already encrypted")
// and opening opens one.
func TestEscapedCiphertexts(t *testing.T) {
	e := newTestEnv(t, Options{})
	rec, ssn, _ := storedPatient(t, e)
	for _, esc := range []string{`\u0072` + ssn[1:], ssn[:10] + `\u00` + fmt.Sprintf("%x", ssn[10]) + ssn[11:]} {
		body := strings.Replace(patient, `"123-45-6789"`, `"`+esc+`"`, 1)
		x := e.do(envoyCfg{}, jsonReq("POST", "/patients", "t1", body))
		if x.client.status != 400 || !strings.Contains(errorMessage(t, x), "already encrypted") {
			t.Errorf("seal of the escaped ciphertext %.20s...: status %d %s, want 400 already encrypted", esc, x.client.status, x.client.body)
		}
		e.app.Put("patients", "1", bytes.Replace(rec, []byte(`"`+ssn+`"`), []byte(`"`+esc+`"`), 1))
		x = e.mustDo(jsonReq("GET", "/patients/1", "t1", ""), 200)
		if !strings.Contains(string(x.client.body), `"ssn":"123-45-6789"`) {
			t.Errorf("open of the escaped ciphertext %.20s...: %s", esc, x.client.body)
		}
	}
}
