//go:build vtprotobuf

package grpccodec

import (
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// TestVTPath: built with the tag vtprotobuf, rkms's answers have go-control-plane's generated
// marshalling, and the codec takes it.
func TestVTPath(t *testing.T) {
	if _, ok := any(&extprocv3.ProcessingResponse{}).(vtMarshaler); !ok {
		t.Fatal("ProcessingResponse has no vtprotobuf marshalling under the tag vtprotobuf")
	}
}
