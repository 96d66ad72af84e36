// Package grpccodec is the gRPC codec of rkms's ext_proc server: protobuf on the wire, exactly
// as grpc-go's default codec ("proto"), with cheaper marshalling where the message allows it.
//
// # Marshalling
//
// A message that has vtprotobuf's generated methods (SizeVT and MarshalToSizedBufferVTStrict)
// is sized and written by them, without protobuf-go's reflection: go-control-plane ships them
// for every Envoy message, ProcessingResponse included, in files behind the build tag
// vtprotobuf. Built without that tag (go build ./...), no message has them and every message
// goes through proto.Marshal, as with the default codec. Either way the encoding has the same
// length and decodes to the same message; the bytes may come in another order (the Strict
// variant writes fields in field-number order, proto.Marshal puts a oneof after the other
// fields, and protobuf defines no order for map entries), which protobuf allows. Encodings of
// at least mem.BufferPoolingThreshold bytes are written into a buffer from gRPC's buffer pool,
// which gRPC returns to it once the bytes are on the wire.
//
// # Unmarshalling
//
// proto.Unmarshal with default options, as the default codec (go-control-plane has no
// generated unmarshalling), with one exception: a ProcessingRequest that holds a body or
// trailers is decoded without its metadata_context. Envoy sends the dynamic metadata it forwards
// (the verified JWT payload, nested Structs that protobuf-go decodes through reflection) with
// every message of a stream, and rkms reads it only from the headers messages; decoding it again
// for each body cost more than the rest of the message (11 µs against 1.4 µs for a 1 KiB body).
// The records before and after the metadata are decoded in order and merged, which protobuf
// defines to give the same message as decoding them together; FuzzCodec checks that the result
// is proto.Unmarshal's without that metadata. Bytes that would not decode inside a skipped
// metadata_context go unnoticed (they are never read).
//
// # Compatibility
//
// The codec is registered under the name "proto" but only on the server that asks for it with
// [ServerOption] (grpc.ForceServerCodecV2), never globally: other gRPC servers and clients of
// the process keep grpc-go's codec.
package grpccodec
