package extproc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/rkms/rkms/internal/testing/env"
)

type observed struct {
	policy, phase, outcome string
	status                 int
}

// recObserver records every call, in order.
type recObserver struct {
	mu     sync.Mutex
	reqs   []observed
	fields map[string]int // "policy/op" -> values
	durs   []time.Duration
}

func (o *recObserver) ObserveRequest(policy, phase, outcome string, status int, dur time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.reqs = append(o.reqs, observed{policy, phase, outcome, status})
	o.durs = append(o.durs, dur)
}

func (o *recObserver) ObserveFields(policy, op string, n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.fields == nil {
		o.fields = map[string]int{}
	}
	o.fields[policy+"/"+op] += n
}

func (o *recObserver) take() ([]observed, map[string]int, []time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	r, f, d := o.reqs, o.fields, o.durs
	o.reqs, o.fields, o.durs = nil, nil, nil
	return r, f, d
}

var _ Observer = (*recObserver)(nil)

func TestObserver(t *testing.T) {
	obs := &recObserver{}
	e := newTestEnv(t, Options{Observer: obs})
	// A stored record to read back, so that the GET below decrypts.
	e.mustDo(jsonReq("POST", "/patients", "t1", patient), 201)
	obs.take()

	notJSON := jsonReq("POST", "/patients", "t1", patient)
	notJSON.headers = notJSON.headers.set("content-type", "text/plain")
	for _, tc := range []struct {
		name       string
		cfg        envoyCfg
		req        httpReq
		raw        []*extprocv3.ProcessingRequest // instead of req: raw messages
		want       []observed
		wantFields map[string]int
	}{
		{name: "create", req: jsonReq("POST", "/patients", "t2", patient), want: []observed{
			{"patients", "request_headers", "continue", 0}, {"patients", "request_body", "continue", 0},
			{"patients", "response_headers", "continue", 0}, {"patients", "response_body", "continue", 0},
		}, wantFields: map[string]int{"patients/encrypt": 4, "patients/decrypt": 4}},
		{name: "read", req: jsonReq("GET", "/patients/1", "t1", ""), want: []observed{
			{"patients", "request_headers", "continue", 0},
			{"patients", "response_headers", "continue", 0}, {"patients", "response_body", "continue", 0},
		}, wantFields: map[string]int{"patients/decrypt": 4}},
		{name: "refused", req: notJSON, want: []observed{{"patients", "request_headers", "refused", 415}}},
		{name: "no policy", req: jsonReq("POST", "/notes", "", `{"a":1}`), want: []observed{{"", "request_headers", "continue", 0}}},
		{name: "unknown policy named by the route is not a label", cfg: envoyCfg{metadata: map[string]string{PolicyMetadataKey: "no-such-policy"}},
			req: jsonReq("POST", "/patients", "t1", patient), want: []observed{{"", "request_headers", "refused", 500}}},
		{name: "protocol error", raw: []*extprocv3.ProcessingRequest{fuzzMessage(1)}, want: []observed{{"", "request_body", "protocol_error", 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.raw != nil {
				sendRaw(t, e, tc.raw)
			} else {
				e.do(tc.cfg, tc.req)
			}
			got, fields, durs := obs.take()
			if !slices.Equal(got, tc.want) {
				t.Errorf("observed\n got %v\nwant %v", got, tc.want)
			}
			if len(fields) != len(tc.wantFields) {
				t.Errorf("fields %v, want %v", fields, tc.wantFields)
			}
			for k, n := range tc.wantFields {
				if fields[k] != n {
					t.Errorf("fields[%s] = %d, want %d", k, fields[k], n)
				}
			}
			for _, d := range durs {
				if d <= 0 || d > 10*time.Second {
					t.Errorf("implausible duration %v", d)
				}
			}
		})
	}
}

// sendRaw sends msgs on one stream until the server ends it.
func sendRaw(t *testing.T, e *testEnv, msgs []*extprocv3.ProcessingRequest) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := e.envoy.client.Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if err := st.Send(m); err != nil {
			break
		}
		if _, err := st.Recv(); err != nil {
			return
		}
	}
	_ = st.CloseSend()
	_, _ = st.Recv()
}

// logRecords parses the JSON log lines written to l since the last call (it drains l).
func logRecords(t *testing.T, l *testenv.LockedBuffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(l.Drain()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %s", sc.Bytes())
		}
		out = append(out, m)
	}
	return out
}

// TestRequestIDPerStream checks that every record a stream logs carries one request id: Envoy's
// x-request-id when present, else one generated per stream, never shared between streams.
func TestRequestIDPerStream(t *testing.T) {
	var buf testenv.LockedBuffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := newTestEnv(t, Options{Logger: log, TrustRequestID: true})

	withID := jsonReq("POST", "/patients", "t1", patient)
	withID.headers = append(withID.headers, [2]string{"x-request-id", "req-0123"})
	e.mustDo(withID, 201)
	recs := logRecords(t, &buf)
	if len(recs) < 2 { // request and response body transformed
		t.Fatalf("want at least 2 records, got %v", recs)
	}
	for _, r := range recs {
		if r["request_id"] != "req-0123" || r["policy"] != "patients" {
			t.Errorf("record without the stream's request id and policy: %v", r)
		}
	}

	// Without x-request-id (the harness, like Envoy, always sets one: raw messages here), one id
	// is generated per stream and shared by its records: "request body transformed" and the
	// refusal of the invalid response body.
	badResponse := &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{
		ResponseBody: &extprocv3.HttpBody{Body: []byte(`{"ssn":`), EndOfStream: true}}}
	generated := map[string]bool{}
	for range 2 {
		sendRaw(t, e, []*extprocv3.ProcessingRequest{fuzzMessage(0), fuzzMessage(1), fuzzMessage(3), badResponse})
		recs := logRecords(t, &buf)
		if len(recs) != 2 {
			t.Fatalf("want 2 records (body transformed, response refused), got %v", recs)
		}
		id, _ := recs[0]["request_id"].(string)
		if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(id) {
			t.Fatalf("generated request id %q", id)
		}
		for _, r := range recs {
			if r["request_id"] != id {
				t.Errorf("two request ids in one stream: %v", r)
			}
			if strings.Contains(strings.ToLower(r["msg"].(string)), "ssn") {
				t.Errorf("body content in a log message: %v", r)
			}
		}
		if generated[id] {
			t.Errorf("request id %s reused across streams", id)
		}
		generated[id] = true
	}
}

// TestUntrustedRequestID: without TrustRequestID a client's x-request-id is not the request id
// (a client could forge audit correlation): rkms makes its own and logs the client's apart.
func TestUntrustedRequestID(t *testing.T) {
	var buf testenv.LockedBuffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	keys := &idKeys{Keys: newFakeKeys()}
	srv, err := NewServer(loadPolicies(t), keys, Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	fe := startServer(t, srv)
	req := jsonReq("POST", "/patients", "t1", `{"ssn":"1"}`)
	req.headers = append(req.headers, [2]string{"x-request-id", "forged-42"})
	if x := fe.do(envoyCfg{}, req, func(*httpReq) httpResp { return httpResp{status: 204} }); x.client.status != 204 {
		t.Fatalf("status %d: %s", x.client.status, x.client.body)
	}
	keys.mu.Lock()
	ids := slices.Clone(keys.ids)
	keys.mu.Unlock()
	if len(ids) != 1 || !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(ids[0]) {
		t.Fatalf("request ids seen by Keys (hence audit): %q, want one generated id", ids)
	}
	for _, r := range logRecords(t, &buf) {
		if r["request_id"] != ids[0] || r["client_request_id"] != "forged-42" {
			t.Errorf("record %v: want request_id %s and client_request_id forged-42", r, ids[0])
		}
	}
}
