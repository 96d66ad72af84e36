package envoy

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/internal/testing/envoytest"
)

// ingress renders ingress.yaml for the suite's ports, then applies edit (if any).
func ingress(edit func(t testing.TB, cfg string) string) envoytest.Render {
	return func(t testing.TB, p envoytest.Ports, failureModeAllow bool) string {
		t.Helper()
		cfg, err := Config("ingress.yaml")
		if err != nil {
			t.Fatal(err)
		}
		out, err := Render(cfg, map[string]int{"admin": p.Admin, "listener": p.Listener, "app": p.App, "rkms": p.Rkms})
		if err == nil {
			out, err = RenderFiles(out, map[string]string{"jwks": p.JWKS})
		}
		if err != nil {
			t.Fatal(err)
		}
		s := string(out)
		if failureModeAllow {
			// Both ext_proc filters (the main one and the pipelined one).
			s = envoytest.ReplaceAll(t, s, "failure_mode_allow: false", "failure_mode_allow: true")
		}
		if edit != nil {
			s = edit(t, s)
		}
		return s
	}
}

// TestIngressBypass runs ingress.yaml in the real Envoy with a fake rkms that meets the metadata
// contract: stamped requests pass, unstamped ones never reach the app (also with
// failure_mode_allow: true and rkms stopped), and every error reply is JSON.
func TestIngressBypass(t *testing.T) {
	testenv.Integration(t)
	envoytest.Run(t, envoytest.Suite{Render: ingress(nil), TaggedPrefix: "/patients", Policy: "patients"})
}

// TestIngressRouteWithoutExtProc: a route to tagged data that someone gave `disabled: true` for
// ext_proc (and forgot that it then carries plaintext) is refused, not served. ExtProcPerRoute
// cannot both disable ext_proc and name a policy (a oneof), so the route names none.
func TestIngressRouteWithoutExtProc(t *testing.T) {
	testenv.Integration(t)
	const route = `                        - match: {prefix: /unprocessed, case_sensitive: false}
                          route: {cluster: app}
                          typed_per_filter_config:
                            envoy.filters.http.ext_proc:
                              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute
                              disabled: true
`
	addRoute := func(t testing.TB, cfg string) string {
		const catchAll = "                        - match: {prefix: /}\n"
		return envoytest.ReplaceOnce(t, cfg, catchAll, route+catchAll)
	}
	st := envoytest.Start(t, ingress(addRoute), false)
	for _, method := range []string{"POST", "GET"} {
		body := `{"ssn":"123-45-6789"}`
		if method == "GET" {
			body = ""
		}
		r := st.Do(t, method, "/unprocessed/1", body)
		if r.Status != 403 || string(r.Body) != `{"error":"`+envoytest.ErrNotProcessed+"\"}\n" {
			t.Errorf("%s on a route without ext_proc: %d %q, want 403 %q", method, r.Status, r.Body, envoytest.ErrNotProcessed)
		}
	}
	if got := st.App.Received(); len(got) != 0 {
		t.Errorf("app received %q", got)
	}
	if got := st.Rkms.Streams(); len(got) != 0 {
		t.Errorf("ext_proc streams %v on a route that disables ext_proc", got)
	}
}

// egress renders egress.yaml for the suite's ports; the suite's app plays the partner API.
func egress(t testing.TB, p envoytest.Ports, failureModeAllow bool) string {
	t.Helper()
	cfg, err := Config("egress.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := Render(cfg, map[string]int{"admin": p.Admin, "listener": p.Listener, "external_api": p.App, "rkms": p.Rkms})
	if err != nil {
		t.Fatal(err)
	}
	if failureModeAllow {
		return envoytest.ReplaceOnce(t, string(out), "failure_mode_allow: false", "failure_mode_allow: true")
	}
	return string(out)
}

// TestEgressBypass: a /partner call rkms did not process never leaves, so the partner's
// plaintext answer cannot reach the app; the response side relies on failure_mode_allow: false.
func TestEgressBypass(t *testing.T) {
	testenv.Integration(t)
	const body = `{"card":"enc:v1:..."}`
	t.Run("fail closed", func(t *testing.T) {
		st := envoytest.Start(t, egress, false)
		if r := st.Do(t, "POST", "/partner/charge", body); r.Status != 200 {
			t.Errorf("stamped call: %d %q", r.Status, r.Body)
		}
		if s, _ := st.Rkms.Last("/partner/charge"); s.Policy != "partner" || !slices.Contains(s.Recv, "request_body") {
			t.Errorf("ext_proc stream %+v, want policy partner and the body", s)
		}
		if r := st.Do(t, "GET", "/PARTNER/status", ""); r.Status != 200 {
			t.Errorf("stamped call in upper case: %d %q", r.Status, r.Body)
		}
		if s, _ := st.Rkms.Last("/PARTNER/status"); s.Policy != "partner" {
			t.Errorf("/PARTNER/status: policy %q, want partner (case-insensitive route)", s.Policy)
		}
		n := len(st.Rkms.Streams())
		if r := st.Do(t, "GET", "/other", ""); r.Status != 200 || len(st.Rkms.Streams()) != n {
			t.Errorf("untagged call: %d, %d ext_proc streams, want 200 and none", r.Status, len(st.Rkms.Streams())-n)
		}
		for _, tc := range []struct {
			name, method, path, body, behaviour string
			status                              int
			want                                string
		}{
			{"unstamped", "POST", "/partner/charge", body, envoytest.NoStamp, 403, envoytest.ErrNotProcessed},
			{"rkms fails the response", "GET", "/partner/charge", "", envoytest.FailAtResponseBody, 503, envoytest.ErrRkmsDown},
			{"response over the buffer limit", "GET", "/partner/charge?big=1", "", "", 500, envoytest.ErrResponseLarge},
			{"request over the buffer limit", "POST", "/partner/charge", `{"pad":"` + strings.Repeat("x", 2<<20) + `"}`, "", 413, envoytest.ErrRequestLarge},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var h []string
				if tc.behaviour != "" {
					h = []string{envoytest.Behaviour, tc.behaviour}
				}
				wantJSONError(t, st.Do(t, tc.method, tc.path, tc.body, h...), tc.status, tc.want)
			})
		}
		if r := st.Do(t, "POST", "/partner/charge", body, envoytest.Behaviour, envoytest.Reject); r.Status != 400 || string(r.Body) != envoytest.RejectBody {
			t.Errorf("rkms's reply became %d %q", r.Status, r.Body)
		}
	})
	t.Run("failure_mode_allow", func(t *testing.T) {
		st := envoytest.Start(t, egress, true)
		n := len(st.App.Received())
		if r := st.Do(t, "POST", "/partner/charge", body, envoytest.Behaviour, envoytest.FailAtBody); r.Status != 403 {
			t.Errorf("call whose processing failed: %d %q, want 403", r.Status, r.Body)
		}
		// The limit (README.md): once the call went out, a failure on the response side lets the
		// partner's answer through unprocessed. Only failure_mode_allow: false prevents that.
		if r := st.Do(t, "GET", "/partner/charge", "", envoytest.Behaviour, envoytest.FailAtResponseBody); r.Status != 200 {
			t.Errorf("response-side failure with failure_mode_allow: %d; Envoy now refuses it, update README.md", r.Status)
		}
		n++ // that GET reached the partner
		st.StopRkms()
		if r := st.Do(t, "POST", "/partner/charge", body); r.Status != 403 {
			t.Errorf("rkms stopped: %d %q, want 403", r.Status, r.Body)
		}
		if got := st.App.Received(); len(got) != n {
			t.Errorf("partner received %q", got[n:])
		}
		if r := st.Do(t, "GET", "/other", ""); r.Status != 200 {
			t.Errorf("untagged call with rkms stopped: %d, want 200", r.Status)
		}
	})
}

// wantJSONError checks an {"error": msg} reply, application/json.
func wantJSONError(t *testing.T, r envoytest.Reply, status int, msg string) {
	t.Helper()
	var e struct{ Error string }
	if r.Status != status || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(r.Body, &e) != nil || e.Error != msg {
		t.Errorf("reply %d %s %q, want %d application/json {\"error\":%q}", r.Status, r.Header.Get("Content-Type"), r.Body, status, msg)
	}
}

// TestIngressMessageTimeout: rkms not answering within message_timeout gives 504 with the same
// JSON error as rkms being down (it takes the 2 s of message_timeout).
func TestIngressMessageTimeout(t *testing.T) {
	testenv.Integration(t)
	st := envoytest.Start(t, ingress(nil), false)
	wantJSONError(t, st.Do(t, "GET", "/patients/1", "", envoytest.Behaviour, envoytest.Stall), 504, envoytest.ErrRkmsDown)
	if got := st.App.Received(); len(got) != 0 {
		t.Errorf("app received %q", got)
	}
}
