package extproc

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/envoy"
	"github.com/rkms/rkms/extproc/policy"
	"github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/internal/testing/envoytest"
)

// routeYAML renders the Envoy route of prefix from rc (what `rkms envoy-config` renders),
// indented for ingress.yaml's route list: a token required, the filter rc names enabled.
func routeYAML(t testing.TB, prefix string, rc RouteConfig) string {
	t.Helper()
	var md []string
	for _, kv := range rc.Metadata {
		md = append(md, fmt.Sprintf("{key: %s, value: %s}", kv[0], kv[1]))
	}
	mode, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(rc.Mode)
	if err != nil {
		t.Fatal(err)
	}
	overrides := fmt.Sprintf(`{overrides: {grpc_initial_metadata: [%s], processing_mode: %s}}`, strings.Join(md, ", "), mode)
	var filters string
	switch rc.Filter {
	case PipelinedFilterName:
		filters = `                            envoy.filters.http.ext_proc:
                              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute
                              disabled: true
                            ` + PipelinedFilterName + `:
                              "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig
                              config: {"@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute, ` + overrides[1:] + `
`
	default:
		filters = `                            envoy.filters.http.ext_proc: {"@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute, ` + overrides[1:] + "\n"
	}
	if !rc.Buffered {
		filters += `                            envoy.filters.http.buffer: {"@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute, disabled: true}
`
	}
	route := ""
	if rc.ResponseOnly {
		// What `rkms envoy-config` renders before the policy's route (internal/envoygen
		// TestRouteKinds checks the generator's).
		respMode, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(ResponseOnlyMode())
		if err != nil {
			t.Fatal(err)
		}
		route = `                        - match:
                            prefix: ` + prefix + `
                            case_sensitive: false
                            headers:
                              - {name: ":method", string_match: {safe_regex: {regex: "GET|HEAD"}}}
                              - {name: content-length, present_match: false}
                              - {name: transfer-encoding, present_match: false}
                              - {name: ":path", string_match: {safe_regex: {regex: "` + ResponseOnlyPathRegex + `"}}}
                          route: {cluster: app, timeout: 15s}
                          typed_per_filter_config:
                            envoy.filters.http.jwt_authn: {"@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig, requirement_name: tenant}
                            envoy.filters.http.ext_proc: {"@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute, overrides: {grpc_initial_metadata: [` + strings.Join(md, ", ") + `], processing_mode: ` + string(respMode) + `}}
                            envoy.filters.http.rbac: {"@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute}
                            envoy.filters.http.buffer: {"@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute, buffer: {max_request_bytes: 1}}
                            envoy.filters.http.header_mutation:
                              "@type": type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutationPerRoute
                              mutations: {request_mutations: [{remove: accept-encoding}, {remove: x-tenant-id}]}
`
	}
	return route + `                        - match: {prefix: ` + prefix + `, case_sensitive: false}
                          route: {cluster: app, timeout: 15s}
                          typed_per_filter_config:
                            envoy.filters.http.jwt_authn: {"@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig, requirement_name: tenant}
` + filters
}

// startKindsStack runs ingress.yaml with routes for an encrypt-only policy (/intake; and
// /pipelined, the same on the pipelined filter, which it adds) and a decrypt-only one
// (/reports), rendered from RouteConfigFor, and the streaming import policy. The app records
// what /imports received.
// pipelinedRoute is rc on the pipelined filter: its static mode with a STREAMED request body.
func pipelinedRoute(rc RouteConfig) RouteConfig {
	rc.Filter = PipelinedFilterName
	m := proto.Clone(rc.Mode).(*filterv3.ProcessingMode)
	m.RequestBodyMode = filterv3.ProcessingMode_STREAMED
	rc.Mode = m
	return rc
}

func startKindsStack(t testing.TB) (*stack, *strings.Builder) {
	t.Helper()
	pols := append(ingressPolicies(t),
		policy.Config{Name: "intake", KeyID: "tenant-{jwt:tenant}", Request: policy.Direction{Encrypt: []policy.Field{{Path: "$.ssn"}}}},
		policy.Config{Name: "reports", KeyID: "tenant-{jwt:tenant}", DecryptOnly: true, ResponseOnly: true, Response: policy.Direction{Decrypt: []policy.Field{{Path: "$.ssn"}}}},
		bulkPolicies()[0])
	set, err := policy.Compile(pols)
	if err != nil {
		t.Fatal(err)
	}
	routes := ""
	for _, p := range set.Policies() {
		if p.Name() == "intake" || p.Name() == "reports" {
			routes += routeYAML(t, "/"+p.Name(), RouteConfigFor(p))
		}
		if p.Name() == "intake" {
			// The same policy on the pipelined filter, which rkms supports and the shipped
			// configurations do not use (for the count and the A/B benchmark).
			routes += routeYAML(t, "/pipelined", pipelinedRoute(RouteConfigFor(p)))
		}
	}
	cfg, err := envoy.Config("ingress.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const catchAll = "                        - match: {prefix: /}\n"
	cfg = []byte(envoytest.WithPipelinedFilter(t, envoytest.ReplaceOnce(t, string(cfg), catchAll, routes+catchAll)))
	imported := &strings.Builder{}
	var s *stack
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/imports") {
			b, _ := io.ReadAll(r.Body)
			imported.Write(b)
			w.Header().Set("content-type", "application/json")
			_, _ = io.WriteString(w, `{"imported":true}`)
			return
		}
		s.app.ServeHTTP(w, r)
	})
	s = startStackWith(t, cfg, Options{}, stackConfig{upstream: "app", policies: pols, app: app})

	return s, imported
}

// TestMessagesPerRouteKind counts the ext_proc messages each kind of request costs through the
// real Envoy (ingress.yaml, with routes for an encrypt-only and a decrypt-only policy rendered
// from RouteConfigFor) in front of this server, and the order of what rkms receives and
// answers: on a pipelined route the request body arrives before rkms answers the headers, so
// the request waits for one round trip to rkms. The replies are checked too: fields sealed on
// the way in, opened on the way out, and the request stamped (else the stamp check refuses it).
func TestMessagesPerRouteKind(t *testing.T) {
	testenv.Integration(t)
	tenant := envoytest.Bearer(t, "t1")
	s, imported := startKindsStack(t)
	// A record sealed through /intake, read back through /reports.
	const rec = `{"ssn":"123-45-6789","name":"Ada"}`
	for _, tc := range []struct {
		kind, method, path, body, contentType string
		want                                  int
		events                                []string // nil: no ext_proc stream at all
		prefix                                bool     // events is what the exchange starts with
		last                                  bool     // events is the last stream's (no request headers name its path)
		headers                               []string // more request headers
		token                                 string   // the Authorization header: "" a valid one for t1, "-" none
		noApp                                 bool     // the request must not reach the app
		check                                 func(t *testing.T, r reply)
	}{
		{kind: "unprotected", method: "GET", path: "/healthz", want: 200},
		// An unprotected route lets no body through: with one, the request is the catch-all's.
		{kind: "unprotected path with a body", method: "GET", path: "/healthz", body: `{"ssn":"1"}`, want: 200,
			events: []string{"recv:request_headers", "sent:RequestHeaders"}},
		{kind: "catch-all (no policy)", method: "POST", path: "/notes", body: rec, want: 201,
			events: []string{"recv:request_headers", "sent:RequestHeaders"}},
		{kind: "encrypt-only POST", method: "POST", path: "/intake", body: rec, want: 201,
			events: []string{"recv:request_headers", "sent:RequestHeaders", "recv:request_body(eos=true)", "sent:RequestBody"},
			check: func(t *testing.T, r reply) {
				stored, _ := s.app.Record("intake", field(t, r.body, "id").(string))
				if v, _ := field(t, stored, "ssn").(string); !envelope.IsCiphertext([]byte(v)) || field(t, stored, "name") != "Ada" {
					t.Errorf("app stored %s", stored)
				}
				checkLength(t, r)
			}},
		// The pipelined filter (not shipped): the body arrives before rkms answers the headers,
		// so the request waits for one round trip to rkms instead of two.
		{kind: "encrypt-only POST, pipelined", method: "POST", path: "/pipelined", body: rec, want: 201,
			events: []string{"recv:request_headers", "recv:request_body(eos=true)", "sent:RequestHeaders", "sent:RequestBody"},
			check: func(t *testing.T, r reply) {
				stored, _ := s.app.Record("pipelined", field(t, r.body, "id").(string))
				s.app.Put("reports", "1", stored)
				// reports/2: the same record, its ciphertext's last character changed.
				v, _ := field(t, stored, "ssn").(string)
				last := "A"
				if strings.HasSuffix(v, "A") {
					last = "B"
				}
				s.app.Put("reports", "2", []byte(strings.Replace(string(stored), v, v[:len(v)-1]+last, 1)))
				if v, _ := field(t, stored, "ssn").(string); !envelope.IsCiphertext([]byte(v)) || field(t, stored, "name") != "Ada" {
					t.Errorf("app stored %s", stored)
				}
				checkLength(t, r)
			}},
		// A refusal at a pipelined body answers the held headers: nothing is stamped and
		// nothing reaches the app.
		{kind: "encrypt-only POST refused, pipelined", method: "POST", path: "/pipelined", body: `{"ssn":`, want: 400,
			events: []string{"recv:request_headers", "recv:request_body(eos=true)", "sent:ImmediateResponse"},
			check: func(t *testing.T, r reply) {
				for _, got := range s.app.Received() {
					if string(got.Body) == `{"ssn":` {
						t.Errorf("the refused body reached the app: %+v", got)
					}
				}
			}},
		// response_only: the request headers are skipped (the route of bodiless GET/HEAD), the
		// stamp check is off there; the app's reply is opened as on the normal route.
		{kind: "decrypt-only GET (response only)", method: "GET", path: "/reports/1", want: 200, headers: []string{"accept-encoding", "gzip, br"},
			last:   true,
			events: []string{"recv:response_headers", "sent:ResponseHeaders", "recv:response_body(eos=true)", "sent:ResponseBody"},
			check: func(t *testing.T, r reply) {
				if field(t, r.body, "ssn") != "123-45-6789" || r.header.Get("content-encoding") != "" {
					t.Errorf("client got %s (content-encoding %q)", r.body, r.header.Get("content-encoding"))
				}
				checkLength(t, r)
				got := s.app.Received()
				if ae := got[len(got)-1].Header.Get("Accept-Encoding"); ae != "" {
					t.Errorf("the app got accept-encoding %q", ae)
				}
			}},
		// The recorder app has no HEAD (405): the route is what is checked.
		{kind: "HEAD (response only)", method: "HEAD", path: "/reports/1", want: 405, last: true,
			events: []string{"recv:response_headers(eos)", "sent:ResponseHeaders"}},
		// The same path the stamped way: a GET with a body, or a path that could hold a
		// ciphertext ('%' or ':', which the route's guard keeps out).
		{kind: "decrypt-only GET with a body", method: "GET", path: "/reports/1", body: `{"q":1}`, want: 200,
			events: []string{"recv:request_headers", "sent:RequestHeaders", "recv:request_body(eos=true)", "sent:RequestBody",
				"recv:response_headers", "sent:ResponseHeaders", "recv:response_body(eos=true)", "sent:ResponseBody"},
			check: func(t *testing.T, r reply) {
				if field(t, r.body, "ssn") != "123-45-6789" {
					t.Errorf("client got %s", r.body)
				}
			}},
		{kind: "decrypt-only GET, ':' in the query", method: "GET", path: "/reports/1?at=12:00", want: 200,
			events: []string{"recv:request_headers(eos)", "sent:RequestHeaders", "recv:response_headers", "sent:ResponseHeaders", "recv:response_body(eos=true)", "sent:ResponseBody"},
			check: func(t *testing.T, r reply) {
				if field(t, r.body, "ssn") != "123-45-6789" {
					t.Errorf("client got %s", r.body)
				}
			}},
		// A ';' path parameter can make some app servers (Tomcat, Jetty) read another path
		// ("/reports/..;/patients" is /patients there): such a path is never taken past rkms.
		{kind: "decrypt-only GET, ';' in the path", method: "GET", path: "/reports/1;v=1", want: 404,
			events: []string{"recv:request_headers(eos)", "sent:RequestHeaders", "recv:response_headers", "sent:ResponseHeaders", "recv:response_body(eos=true)", "sent:ResponseBody"}},
		{kind: "decrypt-only GET, ciphertext in the query", method: "GET", path: "/reports/1?q=rkms%3Aabc", want: 400,
			events: []string{"recv:request_headers(eos)", "sent:ImmediateResponse"}},
		// The trade-off response_only makes (SECURITY.md): rkms sees no request header on this
		// route, so a ciphertext in one is not refused here (on the normal route it gets 400).
		{kind: "decrypt-only GET, ciphertext in a header (response only)", method: "GET", path: "/reports/1", want: 200,
			headers: []string{"x-note", "rkms:abc"}, last: true,
			events: []string{"recv:response_headers", "sent:ResponseHeaders", "recv:response_body(eos=true)", "sent:ResponseBody"}},
		{kind: "decrypt-only GET, tampered ciphertext (response only)", method: "GET", path: "/reports/2", want: 502, last: true,
			events: []string{"recv:response_headers", "sent:ResponseHeaders", "recv:response_body(eos=true)", "sent:ImmediateResponse"},
			check: func(t *testing.T, r reply) {
				if strings.Contains(string(r.body), "123-45-6789") {
					t.Errorf("client got %s", r.body)
				}
			}},
		// jwt_authn's own reply runs through ext_proc's response path: passed unchanged (no JWT:
		// nothing reached the app), its body not even asked for (mode_override).
		{kind: "decrypt-only GET, forged token (response only)", method: "GET", path: "/reports/1", want: 401, token: "Bearer forged.token.x",
			last: true, noApp: true, events: []string{"recv:response_headers", "sent:ResponseHeaders"},
			check: func(t *testing.T, r reply) {
				if strings.Contains(string(r.body), "123-45-6789") || strings.Contains(string(r.body), "rkms:") {
					t.Errorf("client got %s", r.body)
				}
			}},
		{kind: "decrypt-only GET, no token (response only)", method: "GET", path: "/reports/1", want: 401, token: "-",
			last: true, noApp: true, events: []string{"recv:response_headers", "sent:ResponseHeaders"}},
		{kind: "both (encrypt request, decrypt response)", method: "POST", path: "/patients", body: rec, want: 201,
			events: []string{"recv:request_headers", "sent:RequestHeaders", "recv:request_body(eos=true)", "sent:RequestBody",
				"recv:response_headers", "sent:ResponseHeaders", "recv:response_body(eos=true)", "sent:ResponseBody"},
			check: func(t *testing.T, r reply) {
				stored, _ := s.app.Record("patients", field(t, r.body, "id").(string))
				if v, _ := field(t, stored, "ssn").(string); !envelope.IsCiphertext([]byte(v)) || field(t, r.body, "ssn") != "123-45-6789" {
					t.Errorf("app stored %s, client got %s", stored, r.body)
				}
				checkLength(t, r)
			}},
		{kind: "streaming import", method: "POST", path: "/imports", body: bulkLine(1), contentType: "application/x-ndjson", want: 200,
			// Unchanged: the headers are answered before the first chunk (chunks and their
			// answers then interleave as the body flows).
			events: []string{"recv:request_headers", "sent:RequestHeaders", "recv:request_body(eos=false)"}, prefix: true,
			check: func(t *testing.T, r reply) {
				if strings.Contains(imported.String(), "SSN#") || imported.Len() == 0 {
					t.Errorf("app got plaintext %q", imported.String())
				}
			}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			before := s.streams.count()
			headers := slices.Clone(tenant)
			switch tc.token {
			case "":
			case "-":
				headers = nil
			default:
				headers = []string{"Authorization", tc.token}
			}
			if tc.contentType != "" {
				headers = append([]string{"content-type", tc.contentType}, headers...)
			}
			headers = append(headers, tc.headers...)
			seen := len(s.app.Received())
			r := s.do(t, tc.method, tc.path, tc.body, headers...)
			if r.status != tc.want {
				t.Fatalf("status %d, want %d: %s", r.status, tc.want, r.body)
			}
			if tc.events == nil {
				if n := s.streams.count() - before; n != 0 {
					t.Errorf("%d ext_proc streams, want none", n)
				}
			} else if got := s.streams.events(tc.path); tc.last {
				if got = s.streams.last(); !slices.Equal(got, tc.events) {
					t.Errorf("ext_proc exchange %v, want %v", got, tc.events)
				}
			} else if !slices.Equal(got, tc.events) && !(tc.prefix && len(got) > len(tc.events) && slices.Equal(got[:len(tc.events)], tc.events)) {
				t.Errorf("ext_proc exchange %v, want %v", got, tc.events)
			}
			if n := len(s.app.Received()); tc.noApp && n != seen {
				t.Errorf("the app got the request: %+v", s.app.Received()[n-1])
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

// BenchmarkEncryptOnlyRoute is the A/B of pipelining through the real Envoy: the same
// encrypt-only POST on the main filter (request headers, then body: two waits) and on the
// pipelined one (one wait), RKMS_AB_CLIENTS clients per CPU each alternating, so that a noisy machine
// loads both alike. It reports each route's median and p90 latency and their ratio
// (pipelined/main): compare runs with benchstat.
//
//	go test -run '^$' -bench EncryptOnlyRoute -benchtime 2000x -count 5 ./extproc/
func BenchmarkEncryptOnlyRoute(b *testing.B) {
	testenv.Integration(b)
	s, _ := startKindsStack(b)
	tenant := envoytest.Bearer(b, "t1")
	const rec = `{"ssn":"123-45-6789","name":"Ada"}`
	routes := [2]string{"/intake", "/pipelined"}
	var (
		mu  sync.Mutex
		lat [2][]time.Duration
		n   atomic.Int64
	)
	b.ReportAllocs()
	// RKMS_AB_CLIENTS clients at once (default 1), each alternating the routes.
	b.SetParallelism(abClients())
	b.RunParallel(func(pb *testing.PB) {
		var mine [2][]time.Duration
		for pb.Next() {
			k := int(n.Add(1) % 2) // alternate: main, pipelined, main, ...
			start := time.Now()
			if r := s.do(b, "POST", routes[k], rec, tenant...); r.status != 201 {
				b.Errorf("status %d: %s", r.status, r.body)
				return
			}
			mine[k] = append(mine[k], time.Since(start))
		}
		mu.Lock()
		lat[0], lat[1] = append(lat[0], mine[0]...), append(lat[1], mine[1]...)
		mu.Unlock()
	})
	q := func(d []time.Duration, f float64) float64 {
		slices.Sort(d)
		return float64(d[int(f*float64(len(d)-1))].Microseconds())
	}
	if len(lat[0]) > 0 && len(lat[1]) > 0 {
		b.ReportMetric(q(lat[0], 0.5), "main-p50-µs")
		b.ReportMetric(q(lat[1], 0.5), "pipelined-p50-µs")
		b.ReportMetric(q(lat[0], 0.9), "main-p90-µs")
		b.ReportMetric(q(lat[1], 0.9), "pipelined-p90-µs")
		b.ReportMetric(q(lat[1], 0.5)/q(lat[0], 0.5), "p50-ratio")
	}
}

// abClients is RKMS_AB_CLIENTS, the concurrent clients per CPU of BenchmarkEncryptOnlyRoute
// (default 1: one per GOMAXPROCS).
func abClients() int {
	if n, err := strconv.Atoi(os.Getenv("RKMS_AB_CLIENTS")); err == nil && n > 0 && n <= 64 {
		return n
	}
	return 1
}
