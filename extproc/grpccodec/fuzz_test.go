package grpccodec

import (
	"bytes"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
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
	f.Add(bodyWithJWT(f))
	det := proto.MarshalOptions{Deterministic: true}
	known := proto.UnmarshalOptions{DiscardUnknown: true}
	c := Codec{}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, m := range []proto.Message{&extprocv3.ProcessingResponse{}, &extprocv3.ProcessingRequest{}} {
			want := m.ProtoReflect().New().Interface()
			wantErr := proto.Unmarshal(data, want)
			got := m.ProtoReflect().New().Interface()
			gotErr := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(bytes.Clone(data))}, got)
			if req, ok := want.(*extprocv3.ProcessingRequest); ok {
				if wantErr != nil && gotErr == nil {
					// Allowed only where the bytes that do not decode are the metadata of a
					// body or trailers message, which the codec skips unread.
					wantErr = proto.Unmarshal(withoutMetadata(t, data), want)
					if wantErr != nil || !bodyOrTrailers(req) {
						t.Fatalf("the codec decoded what proto.Unmarshal refuses, beyond a body's metadata")
					}
				}
				if wantErr == nil && bodyOrTrailers(req) {
					req.MetadataContext = nil // not decoded for bodies and trailers
				}
			}
			if (gotErr == nil) != (wantErr == nil) {
				t.Fatalf("%T: codec error %v, proto.Unmarshal error %v", m, gotErr, wantErr)
			}
			if gotErr != nil {
				continue
			}
			if !bytes.Equal(mustDet(t, det, got), mustDet(t, det, want)) {
				t.Fatalf("%T: the codec decoded another message than proto.Unmarshal", m)
			}
			src := data
			if bodyOrTrailers(got) {
				src = withoutMetadata(t, data) // what the codec decoded
			}
			if err := known.Unmarshal(src, want); err != nil {
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

// bodyOrTrailers says whether m is a ProcessingRequest holding a body or trailers.
func bodyOrTrailers(m proto.Message) bool {
	req, ok := m.(*extprocv3.ProcessingRequest)
	if !ok {
		return false
	}
	switch req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestBody, *extprocv3.ProcessingRequest_ResponseBody,
		*extprocv3.ProcessingRequest_RequestTrailers, *extprocv3.ProcessingRequest_ResponseTrailers:
		return true
	}
	return false
}

// withoutMetadata returns data without its top-level metadata_context records (field 8,
// length-delimited).
func withoutMetadata(t *testing.T, data []byte) []byte {
	t.Helper()
	var out []byte
	for b := data; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		l := protowire.ConsumeFieldValue(num, typ, b[max(n, 0):])
		if n < 0 || l < 0 {
			t.Fatalf("the codec decoded records that do not parse")
		}
		if num != 8 || typ != protowire.BytesType { // proto.Unmarshal keeps others as unknown fields
			out = append(out, b[:n+l]...)
		}
		b = b[n+l:]
	}
	return out
}
