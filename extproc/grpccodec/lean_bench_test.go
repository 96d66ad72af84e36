package grpccodec

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// bodyWithJWT is a request body message as Envoy sends it behind jwt_authn: 1 KiB of body and
// the verified token's payload in metadata_context.
func bodyWithJWT(tb testing.TB) []byte {
	tb.Helper()
	payload, err := structpb.NewStruct(map[string]any{"iss": "https://issuer.example.com", "aud": "https://app.example.com",
		"sub": "user-1", "tenant": "t42", "exp": 1.9e9, "iat": 1.7e9, "scope": "read write", "roles": []any{"a", "b"}})
	if err != nil {
		tb.Fatal(err)
	}
	m := &extprocv3.ProcessingRequest{
		Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: make([]byte, 1024), EndOfStream: true}},
		MetadataContext: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			"envoy.filters.http.jwt_authn": {Fields: map[string]*structpb.Value{"jwt_payload": structpb.NewStructValue(payload)}}}},
	}
	b, err := proto.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func BenchmarkUnmarshalBody(b *testing.B) {
	data := bodyWithJWT(b)
	b.Run("proto.Unmarshal", func(b *testing.B) {
		for b.Loop() {
			var m extprocv3.ProcessingRequest
			if err := proto.Unmarshal(data, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("without-metadata", func(b *testing.B) {
		for b.Loop() {
			var m extprocv3.ProcessingRequest
			if err := unmarshalRequest(data, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
