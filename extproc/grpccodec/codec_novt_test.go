//go:build !vtprotobuf

package grpccodec

import (
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// TestProtoPath: built without the tag vtprotobuf, no answer has generated marshalling and the
// codec encodes with proto.Marshal, as grpc-go's default codec.
func TestProtoPath(t *testing.T) {
	if _, ok := any(&extprocv3.ProcessingResponse{}).(vtMarshaler); ok {
		t.Fatal("ProcessingResponse has vtprotobuf marshalling without the tag vtprotobuf")
	}
}
