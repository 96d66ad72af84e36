package grpccodec

import (
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Field numbers of envoy.service.ext_proc.v3.ProcessingRequest.
const (
	fieldRequestHeaders   = 2
	fieldResponseHeaders  = 3
	fieldRequestBody      = 4
	fieldResponseBody     = 5
	fieldRequestTrailers  = 6
	fieldResponseTrailers = 7
	fieldMetadataContext  = 8
)

// merge decodes the records of data appended to the message m already holds.
var merge = proto.UnmarshalOptions{Merge: true}

// unmarshalRequest decodes a ProcessingRequest. A body or trailers message is decoded without
// its metadata_context: Envoy repeats the dynamic metadata it forwards (the verified JWT
// payload, nested Structs decoded through reflection) on every message, and rkms reads it only
// from the headers messages (extproc's identities), so decoding it again for each body costs
// the server for nothing. Everything else is decoded as proto.Unmarshal does: the records
// around the metadata are merged in their order, which protobuf defines to give the same
// message as decoding them together. Which kind the message is is decided as protobuf does, by
// the last record of the request oneof. Input that does not parse as top-level records is
// handed to proto.Unmarshal whole (the same error); a metadata_context that would not decode is
// not noticed on a body or trailers message (its bytes are skipped, as unread).
func unmarshalRequest(data []byte, m *extprocv3.ProcessingRequest) error {
	var skip [][2]int // [start, end) of metadata_context records
	last := 0         // the last record of the request oneof: the one the message holds
	for b, off := data, 0; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return proto.Unmarshal(data, m)
		}
		l := protowire.ConsumeFieldValue(num, typ, b[n:])
		if l < 0 {
			return proto.Unmarshal(data, m)
		}
		switch {
		case typ != protowire.BytesType:
			// Not a message record: proto.Unmarshal keeps it as an unknown field.
		case num >= fieldRequestHeaders && num <= fieldResponseTrailers:
			last = int(num)
		case num == fieldMetadataContext:
			skip = append(skip, [2]int{off, off + n + l})
		}
		b, off = b[n+l:], off+n+l
	}
	if last < fieldRequestBody || len(skip) == 0 {
		return proto.Unmarshal(data, m)
	}
	proto.Reset(m)
	from := 0
	for _, s := range skip {
		if err := merge.Unmarshal(data[from:s[0]], m); err != nil {
			return err
		}
		from = s[1]
	}
	return merge.Unmarshal(data[from:], m)
}
