package grpccodec

import (
	"fmt"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
)

// Name is the codec's content-subtype: protobuf, as grpc-go's default codec.
const Name = "proto"

// vtMarshaler is what vtprotobuf generates for a message (go-control-plane's files behind the
// build tag vtprotobuf).
type vtMarshaler interface {
	SizeVT() int
	MarshalToSizedBufferVTStrict(dst []byte) (int, error)
}

// Codec is the encoding.CodecV2 described in the package doc. The zero value uses gRPC's
// default buffer pool.
type Codec struct {
	// Pool holds the buffers of large encodings; nil means mem.DefaultBufferPool().
	Pool mem.BufferPool
}

var _ encoding.CodecV2 = Codec{}

// ServerOption makes a gRPC server use the codec for its messages (grpc.ForceServerCodecV2).
func ServerOption() grpc.ServerOption { return grpc.ForceServerCodecV2(Codec{}) }

// Name returns [Name].
func (Codec) Name() string { return Name }

func (c Codec) pool() mem.BufferPool {
	if c.Pool != nil {
		return c.Pool
	}
	return mem.DefaultBufferPool()
}

// Marshal encodes v, a protobuf message, with its vtprotobuf methods when it has them.
func (c Codec) Marshal(v any) (mem.BufferSlice, error) {
	if vt, ok := v.(vtMarshaler); ok {
		return c.marshalVT(vt)
	}
	m := messageOf(v)
	if m == nil {
		return nil, fmt.Errorf("grpc codec: marshal %T: not a protobuf message", v)
	}
	return c.marshalProto(m)
}

// marshalVT writes m backwards into a buffer of exactly its size.
func (c Codec) marshalVT(m vtMarshaler) (mem.BufferSlice, error) {
	size := m.SizeVT()
	if mem.IsBelowBufferPoolingThreshold(size) {
		buf := make([]byte, size)
		if err := fill(m, buf); err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(buf)}, nil
	}
	pool := c.pool()
	buf := pool.Get(size)
	if err := fill(m, (*buf)[:size]); err != nil {
		pool.Put(buf)
		return nil, err
	}
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

// fill marshals m into buf, which must be m.SizeVT() bytes long.
func fill(m vtMarshaler, buf []byte) error {
	n, err := m.MarshalToSizedBufferVTStrict(buf)
	if err != nil {
		return fmt.Errorf("grpc codec: marshal %T: %w", m, err)
	}
	if n != len(buf) { // the message changed between SizeVT and the write
		return fmt.Errorf("grpc codec: marshal %T: wrote %d bytes, sized %d", m, n, len(buf))
	}
	return nil
}

// marshalProto is grpc-go's default marshalling: proto.Size, then the encoding into a pooled
// buffer when it is large.
func (c Codec) marshalProto(m proto.Message) (mem.BufferSlice, error) {
	size := proto.Size(m)
	// UseCachedSize reuses the sizes proto.Size just cached; m must not change meanwhile
	// (gRPC marshals a message before Send returns).
	opts := proto.MarshalOptions{UseCachedSize: true}
	if mem.IsBelowBufferPoolingThreshold(size) {
		buf, err := opts.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("grpc codec: marshal %T: %w", m, err)
		}
		return mem.BufferSlice{mem.SliceBuffer(buf)}, nil
	}
	pool := c.pool()
	buf := pool.Get(size)
	if _, err := opts.MarshalAppend((*buf)[:0], m); err != nil {
		pool.Put(buf)
		return nil, fmt.Errorf("grpc codec: marshal %T: %w", m, err)
	}
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

// Unmarshal decodes data into v, a protobuf message, with proto.Unmarshal (which copies what
// it keeps: data may be reused once it returns); a ProcessingRequest that carries a body or
// trailers is decoded without its metadata_context ([unmarshalRequest]).
func (c Codec) Unmarshal(data mem.BufferSlice, v any) error {
	m := messageOf(v)
	if m == nil {
		return fmt.Errorf("grpc codec: unmarshal %T: not a protobuf message", v)
	}
	buf := data.MaterializeToBuffer(c.pool())
	defer buf.Free()
	if req, ok := m.(*extprocv3.ProcessingRequest); ok {
		if err := unmarshalRequest(buf.ReadOnlyData(), req); err != nil {
			return fmt.Errorf("grpc codec: unmarshal %T: %w", m, err)
		}
		return nil
	}
	if err := proto.Unmarshal(buf.ReadOnlyData(), m); err != nil {
		return fmt.Errorf("grpc codec: unmarshal %T: %w", m, err)
	}
	return nil
}

// messageOf returns v as a protobuf (APIv2) message, or nil.
func messageOf(v any) proto.Message {
	switch v := v.(type) {
	case protoadapt.MessageV2:
		return v
	case protoadapt.MessageV1:
		return protoadapt.MessageV2Of(v)
	}
	return nil
}
