package load

import (
	"errors"
	"io"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rkms/rkms/extproc"
)

// Noop is the baseline ext_proc server: it answers every message with an empty response of the
// matching kind (CONTINUE, no mutation), doing nothing else but stamp the request as rkms does
// (envoy/README.md, "Bypass protection": without the stamp the shipped ingress.yaml refuses it).
// It is the floor that rkms's cost is compared to: gRPC framing, protobuf decoding and encoding
// of the same messages.
type Noop struct {
	extprocv3.UnimplementedExternalProcessorServer
}

var _ extprocv3.ExternalProcessorServer = (*Noop)(nil)

// noopStamp is rkms's stamp for a request processed without a policy. It is never modified, so
// concurrent streams can marshal it.
var noopStamp = extproc.Stamp("")

// Register adds the service to g.
func (n *Noop) Register(g *grpc.Server) { extprocv3.RegisterExternalProcessorServer(g, n) }

// Process answers each message of one stream until Envoy half-closes it.
func (n *Noop) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
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
			resp.Response = &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}
			if m.RequestHeaders.GetEndOfStream() { // no body message follows
				resp.DynamicMetadata = noopStamp
			}
		case *extprocv3.ProcessingRequest_RequestBody:
			resp.Response = &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{}}
			resp.DynamicMetadata = noopStamp
		case *extprocv3.ProcessingRequest_RequestTrailers:
			resp.Response = &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}
		case *extprocv3.ProcessingRequest_ResponseHeaders:
			resp.Response = &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}}
		case *extprocv3.ProcessingRequest_ResponseBody:
			resp.Response = &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{}}
		case *extprocv3.ProcessingRequest_ResponseTrailers:
			resp.Response = &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}
		default:
			return status.Error(codes.InvalidArgument, "message with no headers, body or trailers")
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}
