package envoy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	testenv "github.com/rkms/rkms/internal/testing/env"
)

// The Envoy behaviours in FULL_DUPLEX_STREAMED body mode that rkms's streaming routes rely on,
// checked against the real binary (envoy/README.md, "Streaming routes"). A scripted ext_proc
// server answers every body chunk with a streamed_response; its behaviour is chosen by the
// request path.

// duplexBootstrap: one listener, ext_proc in FULL_DUPLEX_STREAMED both ways with trailers SEND
// (Envoy refuses full duplex without it), an app cluster.
const duplexBootstrap = `
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: %[1]d}}
static_resources:
  listeners:
    - name: l
      address: {socket_address: {address: 127.0.0.1, port_value: %[2]d}}
      per_connection_buffer_limit_bytes: 1048576
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: l
                route_config:
                  virtual_hosts:
                    - name: app
                      domains: ["*"]
                      routes: [{match: {prefix: /}, route: {cluster: app, timeout: 60s}}]
                http_filters:
                  - name: envoy.filters.http.ext_proc
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor
                      grpc_service: {envoy_grpc: {cluster_name: rkms}}
                      failure_mode_allow: false
                      status_on_error: {code: 503}
                      message_timeout: 2s
                      processing_mode:
                        request_header_mode: SEND
                        response_header_mode: SEND
                        request_body_mode: FULL_DUPLEX_STREAMED
                        response_body_mode: FULL_DUPLEX_STREAMED
                        request_trailer_mode: SEND
                        response_trailer_mode: SEND
                  - name: envoy.filters.http.router
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
    - name: app
      type: STATIC
      connect_timeout: 1s
      per_connection_buffer_limit_bytes: 1048576
      load_assignment:
        cluster_name: app
        endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %[3]d}}}}]}]
    - name: rkms
      type: STATIC
      connect_timeout: 1s
      typed_extension_protocol_options:
        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
          explicit_http_config: {http2_protocol_options: {}}
      load_assignment:
        cluster_name: rkms
        endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %[4]d}}}}]}]
`

// chunkLog is what the scripted server saw of one direction of one stream.
type chunkLog struct {
	chunks, eos, afterEOS, bytes int
}

// scripted is the scripted ext_proc server.
type scripted struct {
	mu    sync.Mutex
	req   map[string]*chunkLog // by path
	resp  map[string]*chunkLog
	stall chan struct{} // closed to end a stall
}

func (s *scripted) log(m map[string]*chunkLog, path string) *chunkLog {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m[path] == nil {
		m[path] = &chunkLog{}
	}
	return m[path]
}

func (s *scripted) process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	path, route := "", ""
	var seen [2]int // body bytes per direction
	var ended [2]bool
	for {
		req, err := stream.Recv()
		if err != nil {
			return nil
		}
		var resp *extprocv3.ProcessingResponse
		switch m := req.GetRequest().(type) {
		case *extprocv3.ProcessingRequest_RequestHeaders:
			for _, h := range m.RequestHeaders.GetHeaders().GetHeaders() {
				if h.GetKey() == ":path" {
					path = string(h.GetRawValue())
				}
			}
			route, _, _ = strings.Cut(path, "?")
			resp = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}}
		case *extprocv3.ProcessingRequest_ResponseHeaders:
			resp = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}}}
		case *extprocv3.ProcessingRequest_RequestBody, *extprocv3.ProcessingRequest_ResponseBody:
			d := 0
			b := req.GetRequestBody()
			lg := s.log(s.req, path)
			if b == nil {
				d, b, lg = 1, req.GetResponseBody(), s.log(s.resp, path)
			}
			s.mu.Lock()
			lg.chunks++
			lg.bytes += len(b.GetBody())
			if ended[d] {
				lg.afterEOS++
			}
			if b.GetEndOfStream() {
				lg.eos++
			}
			s.mu.Unlock()
			seen[d] += len(b.GetBody())
			if route == "/stall" && d == 0 && seen[0] > 1<<20 {
				<-s.stall
			}
			if (route == "/fail-request" && d == 0 || route == "/fail-response" && d == 1) && seen[d] > 1<<20 {
				return status.Error(codes.Internal, "malformed body")
			}
			if ended[d] {
				continue // #46237: a duplicate final chunk is not answered
			}
			ended[d] = b.GetEndOfStream()
			resp = streamed(d, bytes.ToUpper(b.GetBody()), b.GetEndOfStream())
		case *extprocv3.ProcessingRequest_RequestTrailers:
			resp = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}}
		case *extprocv3.ProcessingRequest_ResponseTrailers:
			resp = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}}
		}
		if err := stream.Send(resp); err != nil {
			return nil
		}
	}
}

// streamed is a body answer in full-duplex mode (d 0: request, 1: response).
func streamed(d int, body []byte, eos bool) *extprocv3.ProcessingResponse {
	br := &extprocv3.BodyResponse{Response: &extprocv3.CommonResponse{BodyMutation: &extprocv3.BodyMutation{
		Mutation: &extprocv3.BodyMutation_StreamedResponse{StreamedResponse: &extprocv3.StreamedBodyResponse{Body: body, EndOfStream: eos}}}}}
	if d == 0 {
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: br}}
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: br}}
}

var _ extprocv3.ExternalProcessorServer = scriptedServer{}

type scriptedServer struct {
	extprocv3.UnimplementedExternalProcessorServer
	*scripted
}

// duplexApp echoes the request body's size and length, then answers a body of the size the
// query asks (?n=BYTES) in 64 KiB writes of 'a'.
type duplexApp struct {
	mu   sync.Mutex
	got  map[string][]byte
	errs map[string]error
}

func (a *duplexApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	a.mu.Lock()
	a.got[r.URL.Path], a.errs[r.URL.Path] = b, err
	a.mu.Unlock()
	n, _ := strconv.Atoi(r.URL.Query().Get("n"))
	w.Header().Set("content-type", "application/x-ndjson")
	chunk := bytes.Repeat([]byte("a"), 64<<10)
	for n > 0 {
		k := min(n, len(chunk))
		if _, err := w.Write(chunk[:k]); err != nil {
			return
		}
		n -= k
	}
}

type duplexRig struct {
	base   string
	srv    *scripted
	app    *duplexApp
	envoy  *testenv.Envoy
	client *http.Client
}

func startDuplexRig(t *testing.T) *duplexRig {
	t.Helper()
	testenv.Integration(t)
	ports, err := testenv.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	srv := &scripted{req: map[string]*chunkLog{}, resp: map[string]*chunkLog{}, stall: make(chan struct{})}
	t.Cleanup(func() { close(srv.stall) })
	g := grpc.NewServer()
	extprocv3.RegisterExternalProcessorServer(g, scriptedServer{scripted: srv})
	glis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(glis) }()
	t.Cleanup(g.Stop)
	app := &duplexApp{got: map[string][]byte{}, errs: map[string]error{}}
	alis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: app}
	go func() { _ = hs.Serve(alis) }()
	t.Cleanup(func() { _ = hs.Close() })
	cfg := fmt.Sprintf(duplexBootstrap, ports[0], ports[1], alis.Addr().(*net.TCPAddr).Port, glis.Addr().(*net.TCPAddr).Port)
	e := testenv.StartEnvoy(t, cfg)
	return &duplexRig{base: fmt.Sprintf("http://127.0.0.1:%d", ports[1]), srv: srv, app: app, envoy: e,
		client: &http.Client{Timeout: 30 * time.Second}}
}

func (r *duplexRig) post(t *testing.T, path string, body io.Reader) (*http.Response, []byte, error) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, r.base+path, body)
	req.Header.Set("content-type", "application/x-ndjson")
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// TestEnvoyFullDuplex records and checks what rkms's streaming routes rely on.
func TestEnvoyFullDuplex(t *testing.T) {
	r := startDuplexRig(t)

	// N chunks in, each answered by one streamed_response (upper-cased here): the app and the
	// client get exactly the streamed bytes, the last one marked end_of_stream. Sizes around
	// 1 MiB are where #46237 reported a duplicate final chunk.
	for _, size := range []int{0, 1, 64 << 10, 1<<20 - 1, 1 << 20, 1<<20 + 1, 3 << 20} {
		t.Run(fmt.Sprintf("echo/%d", size), func(t *testing.T) {
			path := fmt.Sprintf("/echo%d", size)
			body := bytes.Repeat([]byte("b"), size)
			resp, got, err := r.post(t, path+"?n="+strconv.Itoa(size), bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 200 || !bytes.Equal(got, bytes.Repeat([]byte("A"), size)) {
				t.Fatalf("status %d, response %d bytes: want 200 and %d upper-cased bytes", resp.StatusCode, len(got), size)
			}
			r.app.mu.Lock()
			appGot := r.app.got[path]
			r.app.mu.Unlock()
			if !bytes.Equal(appGot, bytes.ToUpper(body)) {
				t.Fatalf("app got %d bytes, want the %d streamed ones", len(appGot), size)
			}
			rq, rs := r.srv.log(r.srv.req, path+"?n="+strconv.Itoa(size)), r.srv.log(r.srv.resp, path+"?n="+strconv.Itoa(size))
			t.Logf("request: %d chunks, %d with end_of_stream, %d after it; response: %d chunks, %d eos, %d after",
				rq.chunks, rq.eos, rq.afterEOS, rs.chunks, rs.eos, rs.afterEOS)
			if size > 0 && (rq.eos < 1 || rs.eos < 1) {
				t.Errorf("no end_of_stream chunk seen")
			}
		})
	}

	// A non-OK status mid-stream. Request direction: the app has received the chunks streamed
	// so far and sees its request reset; the client gets status_on_error (503) because no
	// response headers went out yet. Response direction: the headers went out already, so the
	// client sees a truncated body (its read fails).
	t.Run("fail-request", func(t *testing.T) {
		resp, _, err := r.post(t, "/fail-request", bytes.NewReader(bytes.Repeat([]byte("b"), 4<<20)))
		if err != nil {
			t.Logf("client: %v", err)
		} else {
			t.Logf("client: status %d", resp.StatusCode)
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("status %d, want status_on_error 503", resp.StatusCode)
			}
		}
		time.Sleep(200 * time.Millisecond)
		r.app.mu.Lock()
		defer r.app.mu.Unlock()
		t.Logf("app: %d bytes, error %v", len(r.app.got["/fail-request"]), r.app.errs["/fail-request"])
		if r.app.errs["/fail-request"] == nil && len(r.app.got["/fail-request"]) == 4<<20 {
			t.Error("the app got a complete request body after the ext_proc server failed")
		}
	})
	t.Run("fail-response", func(t *testing.T) {
		resp, got, err := r.post(t, "/fail-response?n="+strconv.Itoa(4<<20), strings.NewReader("{}"))
		if err == nil {
			t.Fatalf("client: status %d, %d bytes and no error: want a reset", resp.StatusCode, len(got))
		}
		t.Logf("client: %v (status %v, %d bytes)", err, resp != nil && resp.StatusCode == 200, len(got))
	})

	// A server that stops reading: how much does Envoy take from the client meanwhile? The
	// client's write of 256 MiB stalls once Envoy's buffers (the listener's 1 MiB
	// per_connection_buffer_limit_bytes, the gRPC stream's) and the sockets are full.
	t.Run("stall", func(t *testing.T) {
		var sent countingReader
		sent.left = 256 << 20
		done := make(chan struct{})
		go func() {
			defer close(done)
			c := &http.Client{Timeout: 6 * time.Second}
			req, _ := http.NewRequest(http.MethodPost, r.base+"/stall", &sent)
			req.ContentLength = 256 << 20
			if resp, err := c.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
		before := vmRSS(t, r.envoy.Pid())
		time.Sleep(2 * time.Second)
		n1 := sent.n()
		time.Sleep(2 * time.Second)
		after := vmRSS(t, r.envoy.Pid())
		n := sent.n()
		t.Logf("client wrote %d MiB after 2 s, %d MiB after 4 s while the server was stalled; Envoy RSS %d -> %d MiB", n1>>20, n>>20, before>>20, after>>20)
		if n > n1+1<<20 {
			t.Errorf("Envoy kept taking the client's bytes while rkms read nothing (%d -> %d MiB): not bounded", n1>>20, n>>20)
		}
		if n > 64<<20 {
			t.Errorf("Envoy took %d MiB from the client while rkms read nothing: not bounded", n>>20)
		}
		<-done
	})
}

// countingReader yields left bytes of 'c' and counts what was read.
type countingReader struct {
	mu   sync.Mutex
	left int
	read int
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.left == 0 {
		return 0, io.EOF
	}
	k := min(len(p), c.left)
	for i := range p[:k] {
		p[i] = 'c'
	}
	c.left -= k
	c.read += k
	return k, nil
}

func (c *countingReader) n() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.read
}

// vmRSS is a process's resident memory in bytes (/proc/PID/status VmRSS).
func vmRSS(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.Atoi(f[1])
			return kb << 10
		}
	}
	t.Fatal(errors.New("no VmRSS"))
	return 0
}

func (s scriptedServer) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	return s.process(stream)
}
