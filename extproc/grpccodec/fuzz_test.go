package grpccodec

import (
	"bytes"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// FuzzCodec decodes arbitrary bytes as an answer and as a request with the codec and with
// proto.Unmarshal (the same outcome), then encodes the message without unknown fields (as every
// message rkms builds) with the codec (vtprotobuf's marshalling under the tag vtprotobuf) and
// checks that it has proto.Size's length and decodes to the same message (compared as
// deterministic encodings, so that NaN numbers compare equal). Unknown fields are left out
// because vtprotobuf's marshalling of the well-known types (Struct, Value) drops theirs: see the
// package doc.
func FuzzCodec(f *testing.F) {
	for _, m := range []proto.Message{bodyAnswer(10), request(f), &extprocv3.ProcessingResponse{}} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x0a, 0x05, 0x01})
	det := proto.MarshalOptions{Deterministic: true}
	known := proto.UnmarshalOptions{DiscardUnknown: true}
	c := Codec{}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, m := range []proto.Message{&extprocv3.ProcessingResponse{}, &extprocv3.ProcessingRequest{}} {
			want := m.ProtoReflect().New().Interface()
			wantErr := proto.Unmarshal(data, want)
			got := m.ProtoReflect().New().Interface()
			gotErr := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(bytes.Clone(data))}, got)
			if (gotErr == nil) != (wantErr == nil) {
				t.Fatalf("%T: codec error %v, proto.Unmarshal error %v", m, gotErr, wantErr)
			}
			if gotErr != nil {
				continue
			}
			if !bytes.Equal(mustDet(t, det, got), mustDet(t, det, want)) {
				t.Fatalf("%T: the codec decoded another message than proto.Unmarshal", m)
			}
			if err := known.Unmarshal(data, want); err != nil {
				t.Fatalf("%T: decodes, but not without its unknown fields: %v", m, err)
			}
			enc, err := c.Marshal(want)
			if err != nil {
				t.Fatalf("%T: marshal what decoded: %v", m, err)
			}
			b := enc.Materialize()
			enc.Free()
			if len(b) != proto.Size(want) {
				t.Fatalf("%T: codec wrote %d bytes, proto.Size %d", m, len(b), proto.Size(want))
			}
			back := m.ProtoReflect().New().Interface()
			if err := proto.Unmarshal(b, back); err != nil {
				t.Fatalf("%T: the codec's encoding does not decode: %v", m, err)
			}
			if !bytes.Equal(mustDet(t, det, back), mustDet(t, det, want)) {
				t.Fatalf("%T: round trip changed the message", m)
			}
		}
	})
}

func mustDet(t *testing.T, det proto.MarshalOptions, m proto.Message) []byte {
	t.Helper()
	b, err := det.Marshal(m)
	if err != nil {
		t.Fatalf("%T: deterministic marshal: %v", m, err)
	}
	return b
}
