package grpccodec

import (
	"bytes"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// request is an Envoy-shaped request headers message with metadata (maps) and headers.
func request(t testing.TB) *extprocv3.ProcessingRequest {
	t.Helper()
	payload, err := structpb.NewStruct(map[string]any{"sub": "u1", "tenant": "t1", "exp": 1780003600})
	if err != nil {
		t.Fatal(err)
	}
	return &extprocv3.ProcessingRequest{
		Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{
			Headers: []*corev3.HeaderValue{{Key: ":path", RawValue: []byte("/patients")}, {Key: "content-type", RawValue: []byte("application/json")}}}}},
		MetadataContext: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"jwt": {Fields: map[string]*structpb.Value{"payload": structpb.NewStructValue(payload)}}}},
	}
}

func bodyAnswer(n int) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{
		Response: &extprocv3.CommonResponse{BodyMutation: &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: bytes.Repeat([]byte("x"), n)}}}}}}
}

// TestRoundTrip encodes messages of every size class (empty, small, pooled) and decodes them
// back, from one buffer and from the encoding split into several (as gRPC hands over a message
// received in several frames).
func TestRoundTrip(t *testing.T) {
	c := Codec{}
	msgs := []proto.Message{&extprocv3.ProcessingResponse{}, request(t), bodyAnswer(100), bodyAnswer(64 << 10)}
	for _, m := range msgs {
		data, err := c.Marshal(m)
		if err != nil {
			t.Fatalf("marshal %T: %v", m, err)
		}
		enc := data.Materialize()
		if want := proto.Size(m); len(enc) != want {
			t.Errorf("%T: %d bytes, proto.Size %d", m, len(enc), want)
		}
		for _, split := range []mem.BufferSlice{data, splitInto(enc, 3)} {
			back := m.ProtoReflect().New().Interface()
			if err := c.Unmarshal(split, back); err != nil {
				t.Fatalf("unmarshal %T: %v", m, err)
			}
			if !proto.Equal(back, m) {
				t.Errorf("%T: decoded %v, want %v", m, back, m)
			}
		}
		data.Free()
	}
}

// splitInto cuts b into n buffers.
func splitInto(b []byte, n int) mem.BufferSlice {
	var s mem.BufferSlice
	step := max(1, len(b)/n)
	for len(b) > 0 {
		k := min(step, len(b))
		s = append(s, mem.SliceBuffer(bytes.Clone(b[:k])))
		b = b[k:]
	}
	return s
}

// TestNotAMessage: anything but a protobuf message is refused with an error naming its type.
func TestNotAMessage(t *testing.T) {
	c := Codec{}
	if _, err := c.Marshal("text"); err == nil || !strings.Contains(err.Error(), "string") {
		t.Errorf("marshal a string: %v, want an error naming string", err)
	}
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer([]byte{1})}, new(int)); err == nil || !strings.Contains(err.Error(), "*int") {
		t.Errorf("unmarshal into *int: %v, want an error naming *int", err)
	}
}

// TestUnmarshalMalformed: bytes that are not the message fail with an error, not a partial message.
func TestUnmarshalMalformed(t *testing.T) {
	var m extprocv3.ProcessingRequest
	if err := (Codec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer([]byte{0x0a, 0x05, 0x01})}, &m); err == nil {
		t.Fatal("a truncated message decoded without error")
	}
}

// lying sizes itself wrong, as a message changed between SizeVT and the write would.
type lying struct{ size, wrote int }

func (l lying) SizeVT() int                                        { return l.size }
func (l lying) MarshalToSizedBufferVTStrict(b []byte) (int, error) { return l.wrote, nil }

// TestVTSizeMismatch: an encoding shorter than its size is an error, never a buffer with
// zeros on the wire.
func TestVTSizeMismatch(t *testing.T) {
	for _, l := range []lying{{size: 10, wrote: 9}, {size: 4096, wrote: 4000}} {
		if _, err := (Codec{}).Marshal(l); err == nil || !strings.Contains(err.Error(), "sized") {
			t.Errorf("size %d, wrote %d: %v, want a size mismatch error", l.size, l.wrote, err)
		}
	}
}

// TestName: the codec is protobuf's content-subtype, so that peers (Envoy) see no difference.
func TestName(t *testing.T) {
	if got := (Codec{}).Name(); got != "proto" {
		t.Errorf("Name() = %q, want proto", got)
	}
}

// BenchmarkMarshal encodes rkms's largest usual answer (a replaced 1 KiB body) with the codec
// (vtprotobuf's marshalling with -tags vtprotobuf) and with proto.Marshal. Compare builds with
// and without the tag with benchstat.
func BenchmarkMarshal(b *testing.B) {
	m := bodyAnswer(1300)
	b.Run("codec", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			d, err := (Codec{}).Marshal(m)
			if err != nil {
				b.Fatal(err)
			}
			d.Free()
		}
	})
	b.Run("proto.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := proto.Marshal(m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
