package extproc

import (
	"errors"
	"io"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Process serves one ext_proc stream (one HTTP request): exactly one answer per message, in
// order. Envoy ends a stream by half-close or reset, so io.EOF and Canceled are normal ends.
// Failures that cannot become an HTTP reply end the stream with a non-OK status, never OK,
// because Envoy continues a request unprocessed when the stream ends with OK mid-request.
func (s *Server) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	if n := s.streams.Add(1); n > int64(s.opts.MaxConcurrentStreams) {
		s.streams.Add(-1)
		s.log.Warn("ext_proc stream refused: too many concurrent streams", "limit", s.opts.MaxConcurrentStreams)
		return status.Errorf(codes.ResourceExhausted, "too many concurrent ext_proc streams (limit %d)", s.opts.MaxConcurrentStreams)
	}
	defer s.streams.Add(-1)
	ctx := stream.Context()
	p := s.newProcessor(ctx)
	defer s.freeProcessor(p)
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled {
			return nil
		}
		if err != nil {
			return err
		}
		resp, err := p.handle(ctx, req)
		if err != nil {
			return err
		}
		err = stream.Send(resp)
		p.release() // Send has encoded resp: its body buffer can be reused
		if err != nil {
			return err
		}
	}
}
