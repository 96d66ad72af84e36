package envoytest

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

// Behaviour header: a request carrying it makes [FakeRkms] misbehave in the listed ways
// (comma-separated), to see what Envoy does then.
const Behaviour = "x-fake-rkms"

// The behaviours a request can ask for in its [Behaviour] header.
const (
	// PassThrough is what rkms does for a request no policy covers: it answers the request
	// headers with a mode_override that turns request bodies (and the response phase) off, and
	// stamps that answer, the last request message it will see.
	PassThrough = "pass-through"
	// Reject answers the request headers with ImmediateResponse 400 [RejectBody].
	Reject = "reject"
	// FailAtBody ends the stream with a gRPC error (UNAVAILABLE) when the request body arrives.
	FailAtBody = "fail-at-body"
	// NoStamp processes the request but never stamps it: a broken rkms.
	NoStamp = "no-stamp"
	// FailAtResponseBody ends the stream with a gRPC error (UNAVAILABLE) when the response body
	// arrives.
	FailAtResponseBody = "fail-at-response-body"
	// Stall never answers the request headers (Envoy's message_timeout then decides).
	Stall = "stall"
	// EarlyStamp stamps the request_headers answer although a body message follows. This breaks
	// the contract: with failure_mode_allow, a failure at the body then lets the request through.
	EarlyStamp = "early-stamp"
)

// RejectBody is the body of the fake's ImmediateResponse, in rkms's error format.
const RejectBody = `{"error":"request body is not valid JSON"}`

// FakeRkms is an ext_proc server that stands in for `rkms serve`. It encrypts nothing: it speaks
// the part of rkms's ext_proc contract that the shipped Envoy configurations rely on.
//
//   - The ProcessingResponse that answers the last request-direction message carries
//     dynamic_metadata {"rkms": {"processed": true, "policy": NAME}}: the request_body answer
//     when a body message follows the headers, else the request_headers answer. NAME is the
//     route's x-rkms-policy gRPC initial metadata, "" when the route names none.
//   - On a pipelined stream (protocol_config send_body_without_waiting_for_header_response, the
//     filter rkms.ext_proc.pipelined) the request_headers answer waits for the request body and
//     carries the stamp; both answers are then sent back to back (extproc/pipelined.go).
//   - Its ImmediateResponse is a JSON error with content-type application/json.
//   - Response messages are answered without changes and without metadata.
type FakeRkms struct {
	extprocv3.UnimplementedExternalProcessorServer

	mu      sync.Mutex
	streams []Stream
}

var _ extprocv3.ExternalProcessorServer = (*FakeRkms)(nil)

// Stream is what Envoy sent on one ext_proc stream.
type Stream struct {
	Path   string   // the request's :path
	Policy string   // the x-rkms-policy gRPC metadata of the stream
	Recv   []string // message kinds in order: request_headers, request_body, response_headers, ...
	// Headers are the request headers of the request_headers message (name: values).
	Headers map[string][]string
	// JWT is the verified token's payload that Envoy forwarded with the request_headers message:
	// metadata_context.filter_metadata["envoy.filters.http.jwt_authn"].fields["jwt_payload"]
	// (nil when absent).
	JWT map[string]any
	// Attributes are the request_headers message's attributes["envoy.filters.http.ext_proc"]
	// (nil when absent).
	Attributes map[string]any
}

// The names under which Envoy hands rkms the verified token and the peer certificate (the
// contract of envoy/README.md, "Verified tenants (JWT)" and "Peer identity").
const (
	JWTNamespace   = "envoy.filters.http.jwt_authn" // metadata_context.filter_metadata key
	JWTPayloadKey  = "jwt_payload"                  // field of that namespace (payload_in_metadata)
	AttributesKey  = "envoy.filters.http.ext_proc"  // ProcessingRequest.attributes key
	AttrPeerURISAN = "connection.uri_san_peer_certificate"
	AttrPeerDNSSAN = "connection.dns_san_peer_certificate"
	// AttrSourceAddress is the client's ip:port, by which rkms charges streams to clients.
	AttrSourceAddress = "source.address"
	DefaultTestTenant = "acme" // the tenant of the token Stack.Do sends unless told otherwise
)

// Stamp is the dynamic metadata rkms returns for a request it processed under policy.
func Stamp(policy string) *structpb.Struct {
	return &structpb.Struct{Fields: map[string]*structpb.Value{
		"rkms": structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
			"processed": structpb.NewBoolValue(true),
			"policy":    structpb.NewStringValue(policy),
		}}),
	}}
}

// Process implements the ext_proc stream.
func (f *FakeRkms) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	var policy string
	if md, ok := metadata.FromIncomingContext(stream.Context()); ok {
		if v := md.Get("x-rkms-policy"); len(v) > 0 {
			policy = v[0]
		}
	}
	f.mu.Lock()
	f.streams = append(f.streams, Stream{Policy: policy})
	idx := len(f.streams) - 1
	f.mu.Unlock()
	var do map[string]bool
	var held *extprocv3.ProcessingResponse // the request_headers answer of a pipelined stream
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled {
			return nil
		}
		if err != nil {
			return err
		}
		resp := &extprocv3.ProcessingResponse{}
		switch m := req.GetRequest().(type) {
		case *extprocv3.ProcessingRequest_RequestHeaders:
			hs := m.RequestHeaders
			do = behaviours(header(hs.GetHeaders(), Behaviour))
			f.record(idx, "request_headers", header(hs.GetHeaders(), ":path"))
			f.recordRequest(idx, req)
			if do[Stall] {
				<-stream.Context().Done()
				return nil
			}
			if do[Reject] {
				resp.Response = reject()
				break
			}
			resp.Response = &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}
			if do[PassThrough] {
				resp.ModeOverride = &filterv3.ProcessingMode{ResponseHeaderMode: filterv3.ProcessingMode_SKIP,
					RequestBodyMode: filterv3.ProcessingMode_NONE, ResponseBodyMode: filterv3.ProcessingMode_NONE}
			}
			last := hs.GetEndOfStream() || do[PassThrough]
			if (last || do[EarlyStamp]) && !do[NoStamp] {
				resp.DynamicMetadata = Stamp(policy)
			}
			// EarlyStamp answers at once even when pipelined: the broken rkms it stands for.
			if pc := req.GetProtocolConfig(); pc.GetSendBodyWithoutWaitingForHeaderResponse() && !hs.GetEndOfStream() && !do[EarlyStamp] {
				held = resp
				continue
			}
		case *extprocv3.ProcessingRequest_RequestBody:
			f.record(idx, "request_body", "")
			if do[FailAtBody] {
				return status.Error(codes.Unavailable, "fake rkms: key service unavailable")
			}
			resp.Response = &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{}}
			if !do[NoStamp] && !do[EarlyStamp] {
				resp.DynamicMetadata = Stamp(policy)
			}
			if held != nil {
				// Pipelined: the headers answer goes first and is the one Envoy's stamp check sees.
				held.DynamicMetadata, resp.DynamicMetadata = resp.DynamicMetadata, nil
				if err := stream.Send(held); err != nil {
					return err
				}
				held = nil
			}
		case *extprocv3.ProcessingRequest_ResponseHeaders:
			f.record(idx, "response_headers", "")
			resp.Response = &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}}
		case *extprocv3.ProcessingRequest_ResponseBody:
			f.record(idx, "response_body", "")
			if do[FailAtResponseBody] {
				return status.Error(codes.Unavailable, "fake rkms: key service unavailable")
			}
			resp.Response = &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{}}
		default:
			return status.Errorf(codes.Unimplemented, "fake rkms: unexpected %T", m)
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

func reject() *extprocv3.ProcessingResponse_ImmediateResponse {
	return &extprocv3.ProcessingResponse_ImmediateResponse{ImmediateResponse: &extprocv3.ImmediateResponse{
		Status: &typev3.HttpStatus{Code: typev3.StatusCode_BadRequest},
		Headers: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{{
			Header: &corev3.HeaderValue{Key: "content-type", RawValue: []byte("application/json")}}}},
		Body:    []byte(RejectBody),
		Details: "rkms_bad_input",
	}}
}

func behaviours(h string) map[string]bool {
	do := map[string]bool{}
	for _, b := range strings.Split(h, ",") {
		if b = strings.TrimSpace(b); b != "" {
			do[b] = true
		}
	}
	return do
}

func header(hm *corev3.HeaderMap, name string) string {
	for _, h := range hm.GetHeaders() {
		if h.GetKey() == name {
			return string(h.GetRawValue())
		}
	}
	return ""
}

func (f *FakeRkms) record(idx int, msg, path string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := &f.streams[idx]
	if path != "" {
		s.Path = path
	}
	s.Recv = append(s.Recv, msg)
}

// recordRequest keeps the request headers, the forwarded JWT payload and the attributes of a
// request_headers message.
func (f *FakeRkms) recordRequest(idx int, req *extprocv3.ProcessingRequest) {
	hs := map[string][]string{}
	for _, h := range req.GetRequestHeaders().GetHeaders().GetHeaders() {
		hs[h.GetKey()] = append(hs[h.GetKey()], string(h.GetRawValue()))
	}
	var jwt, attrs map[string]any
	if ns := req.GetMetadataContext().GetFilterMetadata()[JWTNamespace]; ns != nil {
		if p := ns.GetFields()[JWTPayloadKey].GetStructValue(); p != nil {
			jwt = p.AsMap()
		}
	}
	if a := req.GetAttributes()[AttributesKey]; a != nil {
		attrs = a.AsMap()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s := &f.streams[idx]
	s.Headers, s.JWT, s.Attributes = hs, jwt, attrs
}

// Streams returns a copy of every stream so far, in the order they opened.
func (f *FakeRkms) Streams() []Stream {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Stream, len(f.streams))
	for i, s := range f.streams {
		// Headers, JWT and Attributes are set once and never changed: shared.
		out[i] = Stream{Path: s.Path, Policy: s.Policy, Recv: append([]string(nil), s.Recv...),
			Headers: s.Headers, JWT: s.JWT, Attributes: s.Attributes}
	}
	return out
}

// Last returns the last stream of a request with path.
func (f *FakeRkms) Last(path string) (Stream, bool) {
	ss := f.Streams()
	for i := len(ss) - 1; i >= 0; i-- {
		if ss[i].Path == path {
			return ss[i], true
		}
	}
	return Stream{}, false
}

// serve runs f on a free loopback port, over TLS with tlsConf unless it is nil. stop ends the
// server (idempotent; also at cleanup).
func serve(t testing.TB, f *FakeRkms, tlsConf *tls.Config) (port int, stop func()) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var opts []grpc.ServerOption
	if tlsConf != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsConf)))
	}
	g := grpc.NewServer(opts...)
	extprocv3.RegisterExternalProcessorServer(g, f)
	go func() { _ = g.Serve(lis) }()
	var once sync.Once
	stop = func() { once.Do(g.Stop) }
	t.Cleanup(stop)
	return lis.Addr().(*net.TCPAddr).Port, stop
}
