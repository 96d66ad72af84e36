package envoytest

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// Suite describes a configuration under test.
type Suite struct {
	Render Render
	// TaggedPrefix is the prefix of a route that names Policy (x-rkms-policy), as the
	// configuration spells it, e.g. "/patients".
	TaggedPrefix, Policy string
	// RkmsTLS, when set, is the fake rkms's server TLS configuration: for configurations whose
	// rkms cluster speaks (mutual) TLS.
	RkmsTLS *tls.Config
}

// The error texts of the shipped configurations' local_reply_config.
const (
	ErrNotProcessed  = "request not processed by rkms"
	ErrRkmsDown      = "rkms unavailable"
	ErrRequestLarge  = "request body too large"
	ErrResponseLarge = "response body too large"
	ErrBadPath       = "invalid request path"
)

// Run checks bypass protection and local replies of the configuration, in the real Envoy:
// first as shipped (fail closed), then with failure_mode_allow: true; and what it tells rkms
// about the caller (verified tokens, x-tenant-id, request ids).
func Run(t *testing.T, s Suite) {
	t.Run("fail closed", func(t *testing.T) { runFailClosed(t, s) })
	t.Run("failure_mode_allow", func(t *testing.T) { runFailOpen(t, s) })
	t.Run("identity", func(t *testing.T) { runIdentity(t, s) })
}

func runFailClosed(t *testing.T, s Suite) {
	st := StartConfig(t, Config{Render: s.Render, RkmsTLS: s.RkmsTLS})
	tagged := s.TaggedPrefix + "/1"
	const body = `{"ssn":"123-45-6789"}`

	t.Run("body stamped at the body answer passes", func(t *testing.T) {
		r := st.Do(t, "POST", s.TaggedPrefix, body)
		wantPassed(t, st, r, "POST "+s.TaggedPrefix+" "+body)
		// BUFFERED: Envoy held the headers until the body answer, so the stamp check ran after it.
		wantStream(t, st, s.TaggedPrefix, s.Policy, "request_headers", "request_body", "response_headers", "response_body")
	})
	t.Run("bodiless request stamped at the headers answer passes", func(t *testing.T) {
		r := st.Do(t, "GET", tagged, "")
		wantPassed(t, st, r, "GET "+tagged+" ")
		wantStream(t, st, tagged, s.Policy, "request_headers", "response_headers", "response_body")
	})
	t.Run("tagged route matches in any case", func(t *testing.T) {
		upper := strings.ToUpper(tagged)
		r := st.Do(t, "GET", upper, "")
		wantPassed(t, st, r, "GET "+upper+" ")
		wantStream(t, st, upper, s.Policy, "request_headers", "response_headers", "response_body")
	})
	t.Run("request without policy stamped at the headers answer passes", func(t *testing.T) {
		// rkms turns the body off with mode_override, so the headers answer is its last.
		r := st.Do(t, "POST", "/notes", body, Behaviour, PassThrough)
		wantPassed(t, st, r, "POST /notes "+body)
		wantStream(t, st, "/notes", "", "request_headers")
	})
	t.Run("health check skips rkms and the stamp check", func(t *testing.T) {
		n := len(st.Rkms.Streams())
		r := st.Do(t, "GET", "/healthz", "")
		wantPassed(t, st, r, "GET /healthz ")
		if got := len(st.Rkms.Streams()); got != n {
			t.Errorf("GET /healthz opened %d ext_proc streams, want none", got-n)
		}
		// Only GET and HEAD skip rkms: a body sent to /healthz goes through it.
		wantRefused(t, st, 403, ErrNotProcessed, "POST", "/healthz", body, Behaviour, NoStamp)
	})
	t.Run("unstamped request is refused", func(t *testing.T) {
		wantRefused(t, st, 403, ErrNotProcessed, "POST", s.TaggedPrefix, body, Behaviour, NoStamp)
	})
	t.Run("rkms reply reaches the client unchanged", func(t *testing.T) {
		n := len(st.App.Received())
		r := st.Do(t, "POST", s.TaggedPrefix, body, Behaviour, Reject)
		if r.Status != 400 || r.Header.Get("Content-Type") != "application/json" || string(r.Body) != RejectBody {
			t.Errorf("rkms's reply became %d %q %q, want 400 application/json %q", r.Status, r.Header.Get("Content-Type"), r.Body, RejectBody)
		}
		wantNothingReached(t, st, n)
	})
	t.Run("local replies are JSON", func(t *testing.T) {
		for _, tc := range []struct {
			name, method, path, body, behaviour string
			status                              int
			want                                string
		}{
			{"request over the buffer limit", "POST", s.TaggedPrefix, `{"pad":"` + strings.Repeat("x", 2<<20) + `"}`, "", 413, ErrRequestLarge},
			{"rkms fails the stream", "POST", s.TaggedPrefix, body, FailAtBody, 503, ErrRkmsDown},
			{"escaped slash", "GET", "/a%2Fb", "", "", 400, ErrBadPath},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var h []string
				if tc.behaviour != "" {
					h = []string{Behaviour, tc.behaviour}
				}
				wantRefused(t, st, tc.status, tc.want, tc.method, tc.path, tc.body, h...)
			})
		}
		t.Run("response over the buffer limit", func(t *testing.T) {
			// The app did answer (the request was stamped); its response is refused.
			r := st.Do(t, "GET", tagged+"?big=1", "")
			wantJSONError(t, r, 500, ErrResponseLarge)
		})
		t.Run("app down", func(t *testing.T) {
			st.StopApp()
			r := st.Do(t, "GET", tagged, "")
			wantJSONError(t, r, 503, "") // Envoy's own text, e.g. "upstream connect error ..."
		})
		t.Run("rkms down", func(t *testing.T) {
			st.StopRkms()
			r := st.Do(t, "GET", tagged, "")
			wantJSONError(t, r, 503, ErrRkmsDown)
		})
	})
}

func runFailOpen(t *testing.T, s Suite) {
	st := StartConfig(t, Config{Render: s.Render, FailureModeAllow: true, RkmsTLS: s.RkmsTLS})
	tagged := s.TaggedPrefix + "/1"
	const body = `{"ssn":"123-45-6789"}`

	t.Run("stream failure at the body is refused", func(t *testing.T) {
		wantRefused(t, st, 403, ErrNotProcessed, "POST", s.TaggedPrefix, body, Behaviour, FailAtBody)
	})
	t.Run("a stamp before the last message defeats the check", func(t *testing.T) {
		// Why the contract says "the answer to the LAST request message": stamped on the headers
		// answer, a request whose body then fails is let through unprocessed.
		r := st.Do(t, "POST", s.TaggedPrefix, body, Behaviour, EarlyStamp+","+FailAtBody)
		if r.Status != 200 {
			t.Errorf("status %d: Envoy no longer lets this through; the contract could be relaxed", r.Status)
		}
	})
	t.Run("rkms stopped", func(t *testing.T) {
		st.StopRkms()
		for _, req := range [][2]string{{"POST", s.TaggedPrefix}, {"GET", tagged}, {"GET", strings.ToUpper(tagged)},
			{"POST", "/notes"}, {"GET", "/"}, {"POST", "/healthz"}} {
			b := body
			if req[0] == "GET" {
				b = ""
			}
			wantRefused(t, st, 403, ErrNotProcessed, req[0], req[1], b)
		}
		if r := st.Do(t, "GET", "/healthz", ""); r.Status != 200 {
			t.Errorf("GET /healthz with rkms stopped: %d, want 200 (it never needs rkms)", r.Status)
		}
	})
}

// wantPassed checks that the request reached the app, as the last request it received, and that
// the app's answer came back.
func wantPassed(t *testing.T, st *Stack, r Reply, want string) {
	t.Helper()
	got := st.App.Received()
	if r.Status != 200 || len(got) == 0 || got[len(got)-1] != want {
		t.Errorf("status %d %q; app's last request %q, want %q", r.Status, r.Body, last(got), want)
	}
}

// wantRefused sends a request and checks that it got a JSON error reply and never reached the
// app.
func wantRefused(t *testing.T, st *Stack, status int, msg, method, path, body string, headers ...string) {
	t.Helper()
	n := len(st.App.Received())
	wantJSONError(t, st.Do(t, method, path, body, headers...), status, msg)
	wantNothingReached(t, st, n)
}

// wantNothingReached checks that the app received no request after its first before ones.
func wantNothingReached(t *testing.T, st *Stack, before int) {
	t.Helper()
	if got := st.App.Received(); len(got) != before {
		t.Errorf("a refused request reached the app: %.200q", got[before:])
	}
}

// wantJSONError checks {"error": msg} (any non-empty text when msg is "") as application/json,
// with no other member.
func wantJSONError(t *testing.T, r Reply, status int, msg string) {
	t.Helper()
	var e struct{ Error string }
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	err := dec.Decode(&e)
	if r.Status != status || r.Header.Get("Content-Type") != "application/json" || err != nil ||
		e.Error == "" || (msg != "" && e.Error != msg) {
		t.Errorf("reply %d %s %q, want %d application/json {\"error\":%q} (decode: %v)",
			r.Status, r.Header.Get("Content-Type"), r.Body, status, msg, err)
	}
}

// wantStream checks the message kinds Envoy sent on the last ext_proc stream for path, and the
// policy the route named.
func wantStream(t *testing.T, st *Stack, path, policy string, recv ...string) {
	t.Helper()
	s, ok := st.Rkms.Last(path)
	if !ok || s.Policy != policy || !slices.Equal(s.Recv, recv) {
		t.Errorf("ext_proc stream for %s: %+v (found %v), want policy %q and messages %v", path, s, ok, policy, recv)
	}
}

func last(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}

// ReplaceOnce replaces old by new in s, and fails t unless old occurs exactly once: a test that
// edits a configuration must notice when the configuration changed under it.
func ReplaceOnce(t testing.TB, s, old, new string) string {
	t.Helper()
	if n := strings.Count(s, old); n != 1 {
		t.Fatalf("configuration has %d occurrences of %q, want 1", n, old)
	}
	return strings.Replace(s, old, new, 1)
}

// ReplaceAll replaces every old by new in s, and fails t unless old occurs at least once.
func ReplaceAll(t testing.TB, s, old, new string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("configuration has no %q", old)
	}
	return strings.ReplaceAll(s, old, new)
}
