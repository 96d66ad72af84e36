package envoy

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rkms/rkms/internal/testing/envoytest"
)

// probe is an ext_proc server that records every message Envoy sends, whole, and answers each
// with answer (nil: an empty answer of the matching kind). It is how the tests of
// modes_test.go find out what Envoy 1.40 does with a processing mode, instead of assuming it.
type probe struct {
	extprocv3.UnimplementedExternalProcessorServer
	answer func(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse
	// answerFn, when set and it reports true, answers req with the answers it returns (none:
	// the message is held unanswered), in place of answer.
	answerFn func(stream extprocv3.ExternalProcessor_ProcessServer, req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, bool)

	mu      sync.Mutex
	streams [][]*extprocv3.ProcessingRequest
}

func (p *probe) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	p.mu.Lock()
	p.streams = append(p.streams, nil)
	idx := len(p.streams) - 1
	p.mu.Unlock()
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled {
			return nil
		}
		if err != nil {
			return err
		}
		p.mu.Lock()
		p.streams[idx] = append(p.streams[idx], proto.Clone(req).(*extprocv3.ProcessingRequest))
		p.mu.Unlock()
		if p.answerFn != nil {
			if rs, ok := p.answerFn(stream, req); ok {
				for _, r := range rs {
					if err := stream.Send(r); err != nil {
						return err
					}
				}
				continue
			}
		}
		var resp *extprocv3.ProcessingResponse
		if p.answer != nil {
			resp = p.answer(req)
		}
		if resp == nil {
			resp = emptyAnswer(req)
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

// emptyAnswer answers req without changes.
func emptyAnswer(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	switch req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}}
	case *extprocv3.ProcessingRequest_RequestBody:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{}}}
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}}}
	case *extprocv3.ProcessingRequest_ResponseBody:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{}}}
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}}
	default:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}}
	}
}

// last returns the messages of the last stream.
func (p *probe) last() []*extprocv3.ProcessingRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.streams) == 0 {
		return nil
	}
	return p.streams[len(p.streams)-1]
}

func (p *probe) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.streams)
}

// kinds names the messages of a stream.
func kinds(ms []*extprocv3.ProcessingRequest) []string {
	var out []string
	for _, m := range ms {
		switch m.GetRequest().(type) {
		case *extprocv3.ProcessingRequest_RequestHeaders:
			out = append(out, "request_headers")
		case *extprocv3.ProcessingRequest_RequestBody:
			out = append(out, "request_body")
		case *extprocv3.ProcessingRequest_ResponseHeaders:
			out = append(out, "response_headers")
		case *extprocv3.ProcessingRequest_ResponseBody:
			out = append(out, "response_body")
		case *extprocv3.ProcessingRequest_RequestTrailers:
			out = append(out, "request_trailers")
		case *extprocv3.ProcessingRequest_ResponseTrailers:
			out = append(out, "response_trailers")
		}
	}
	return out
}

// stampLast answers the last request message (the body, or bodiless headers) with the
// stamp, everything else without changes.
func stampLast(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	r := emptyAnswer(req)
	switch m := req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		if m.RequestHeaders.GetEndOfStream() {
			r.DynamicMetadata = envoytest.Stamp("patients")
		}
	case *extprocv3.ProcessingRequest_RequestBody:
		r.DynamicMetadata = envoytest.Stamp("patients")
	}
	return r
}

// startProbe runs p on a loopback port.
func startProbe(t testing.TB, p *probe) int {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	extprocv3.RegisterExternalProcessorServer(g, p)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	return lis.Addr().(*net.TCPAddr).Port
}

