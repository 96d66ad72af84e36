package extproc

import (
	"math"
	"strconv"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// What Envoy forwards of the caller's verified identity (see envoy/README.md):
const (
	// JWTNamespace is the dynamic metadata namespace of Envoy's jwt_authn filter, forwarded to
	// ext_proc with metadata_options.forwarding_namespaces.untyped.
	JWTNamespace = "envoy.filters.http.jwt_authn"
	// JWTPayloadKey is the key under which jwt_authn stores the verified payload
	// (payload_in_metadata).
	JWTPayloadKey = "jwt_payload"
	// attributesNamespace holds the request_attributes Envoy sends on the first message.
	attributesNamespace = "envoy.filters.http.ext_proc"
	attrURISAN          = "connection.uri_san_peer_certificate"
	attrDNSSAN          = "connection.dns_san_peer_certificate"
)

// identities records the verified identities Envoy forwarded with the request headers: the
// JWT payload that jwt_authn verified, and the client certificate's SANs. A client cannot set
// either: they are Envoy's dynamic metadata and connection attributes, not headers.
func (p *processor) identities(req *extprocv3.ProcessingRequest) {
	if md := req.GetMetadataContext().GetFilterMetadata()[JWTNamespace]; md != nil {
		p.jwt = md.GetFields()[JWTPayloadKey].GetStructValue()
	}
	if attrs := req.GetAttributes()[attributesNamespace]; attrs != nil {
		p.peerURI = attrs.GetFields()[attrURISAN].GetStringValue()
		p.peerDNS = attrs.GetFields()[attrDNSSAN].GetStringValue()
	}
}

// jwtClaims reads claims of a verified JWT payload for policy templates.
type jwtClaims struct{ s *structpb.Struct }

// Claim returns a string claim as is and an integer number claim in decimal.
func (c jwtClaims) Claim(name string) (string, bool) {
	v, ok := c.s.GetFields()[name]
	if !ok {
		return "", false
	}
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return k.StringValue, true
	case *structpb.Value_NumberValue:
		if f := k.NumberValue; f == math.Trunc(f) && math.Abs(f) <= 1<<53 {
			return strconv.FormatInt(int64(f), 10), true
		}
	}
	return "", false
}
