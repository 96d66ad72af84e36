package policy

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

// Config is one entry of the `policies:` list of the configuration file. See the package
// documentation for the meaning of every field.
type Config struct {
	Name     string    `yaml:"name"`
	Match    Match     `yaml:"match"`
	KeyID    string    `yaml:"key_id"`
	Request  Direction `yaml:"request"`
	Response Direction `yaml:"response"`
	Mode     string    `yaml:"mode"` // "randomized" (default) or "deterministic"
	// CaseSensitive makes the path prefix and member names match exactly. By default both
	// match under case folding, the way Express and ASP.NET Core route paths and Go's
	// encoding/json binds keys, so that /PATIENTS or {"SSN": ...} cannot slip a value past the
	// policy to an application that matches case-insensitively.
	CaseSensitive bool `yaml:"case_sensitive"`
	// Allow lists selectors where a member named like a tagged field may hold plaintext in a
	// body that goes to the application ($.doctor.email when only the patient's email is
	// tagged). Everywhere else such a member is refused unless the policy encrypts it.
	Allow []string `yaml:"allow"`
	// DecryptOnly declares a policy that decrypts fields it does not encrypt itself (a read-only
	// route fed by another route or a bulk job). Without it, every decrypted field must be
	// covered by an encrypted field of the other direction with the same label.
	DecryptOnly bool `yaml:"decrypt_only"`
	// ResponseOnly lets the policy's bodiless GET and HEAD requests skip the request headers
	// message: Envoy sends rkms the response only (2 ext_proc messages instead of 3; `rkms
	// envoy-config` renders the route, envoy/README.md "Fewest round trips"). rkms then never
	// sees those requests' headers, so its tripwire for a ciphertext in a request header is off
	// for them (one in the path or query makes the request take the policy's normal route);
	// see SECURITY.md. Only for a policy that decrypts response fields and encrypts none, does
	// not stream, has no index_query, and whose key_id and context read only {jwt:CLAIM}s and
	// literals; its methods, when listed, must include GET or HEAD.
	ResponseOnly bool `yaml:"response_only"`
	// Context binds every field the policy seals to a value of the request, computed like the
	// key id ({path:N}, {header:NAME}, {jwt:CLAIM}, {json:SELECTOR}...): a ciphertext moved to
	// another record (another context) fails to open. Only for routes where writer and reader
	// both know the record's id (PUT and GET /records/{id}); see docs/policies.md.
	Context string `yaml:"context"`
	// TrustedHeaders lists the request headers that the key id or context may read because
	// something the client cannot bypass sets or verifies them (an authentication filter in
	// front of ext_proc). A {header:NAME} placeholder on any other header is a warning of
	// `rkms config check`: the client would choose its key.
	TrustedHeaders []string `yaml:"trusted_headers"`
	// LegacyPlaintext says what a value that is not a ciphertext gets at a decrypt path:
	// "refuse" (default) fails the message, "pass" lets it through unchanged (for a migration
	// from plaintext; counted as rkms_extproc_fields_total{op="legacy_plaintext"}). null always
	// passes: it carries no data.
	LegacyPlaintext string `yaml:"legacy_plaintext"`
	// Create says who may create the policy's keys: "on_demand" (default) creates a key the
	// first time a field is sealed under it, within the replica's creation rate limit
	// (kms.create_rate); "admin_only" never creates one from a request: sealing under a key id
	// that has no key yet is refused with 403 and costs no KMS call, and an operator creates
	// keys with the admin API (GET /key?id=...) or the gRPC key API (GetKey).
	Create string `yaml:"create"`
	// MaxStreamBytes bounds the total size of one streamed body of this policy, per direction
	// (request.stream, response.stream). 0 means DefaultMaxStreamBytes. A buffered body is
	// bounded by extproc.max_body_bytes as before.
	MaxStreamBytes int64 `yaml:"max_stream_bytes"`
}

// DefaultMaxStreamBytes is the default bound on one streamed body (Config.MaxStreamBytes):
// 1 GiB. MaxMaxStreamBytes is the largest value accepted: 1 TiB.
const (
	DefaultMaxStreamBytes int64 = 1 << 30
	MaxMaxStreamBytes     int64 = 1 << 40
)

// Match selects the requests a policy applies to when Envoy does not name the policy.
// An empty Match matches nothing: the policy is then used only when a route names it.
type Match struct {
	PathPrefix string   `yaml:"path_prefix"` // prefix of the canonical path, starts with "/"
	Methods    []string `yaml:"methods"`     // empty: every method
}

// Direction lists the fields to encrypt and to decrypt in one direction (request or response).
type Direction struct {
	Encrypt []Field `yaml:"encrypt"`
	Decrypt []Field `yaml:"decrypt"`
	// IndexQuery (request only) replaces a query parameter's plaintext by its blind index
	// before the application sees the request: `?ssn=123-45-6789` reaches it as
	// `?ssn_idx=<index>`, so that it finds records by index without ever seeing the value.
	IndexQuery []IndexQuery `yaml:"index_query"`
	// Stream lets bodies of this direction arrive streamed, on a route that Envoy configures
	// with FULL_DUPLEX_STREAMED and names as streaming (extproc.StreamMetadataKey): rkms then
	// rewrites them chunk by chunk, holding one value plus a bounded window, never the whole
	// body. Without it, a streamed body is refused. Streaming policies must compute the key id
	// and context without the body, and (request) cannot use allow.
	Stream bool `yaml:"stream"`
	// Compressed (request only) says what a request body with a content-encoding (gzip,
	// deflate, br, zstd) gets: "decompress" (default) decodes it within the body limit, rewrites
	// it and sends it on uncompressed; "refuse" answers 415. Unknown or stacked codings are
	// always refused.
	Compressed string `yaml:"compressed"`
	// Reveal (response only) says what each caller sees of each decrypted field, on its
	// verified identity: full, masked, a token, redacted or the ciphertext (see [Reveal]).
	// Without it, every decrypted field is revealed in full.
	Reveal *Reveal `yaml:"reveal"`
}

// Index declares a blind index for a request.encrypt field: the member Name, written next to
// the field's ciphertext in the same object, holds a truncated HMAC of the field's normalised
// plaintext (package github.com/rkms/rkms/extproc/blindindex; SECURITY.md, "Blind indexes").
type Index struct {
	Name      string   `yaml:"name"`      // the sibling member; 1..64 of [A-Za-z0-9_-]
	Bits      int      `yaml:"bits"`      // 8..256, a multiple of 8; 0 means 32
	Normalize []string `yaml:"normalize"` // nfc, trim, lower, digits
}

// IndexQuery names a query parameter whose value a lookup route turns into the blind index
// Index (declared by a request.encrypt field of the same policy).
type IndexQuery struct {
	Param string `yaml:"param"`
	Index string `yaml:"index"`
}

// Field is one selected field. In YAML it is either a selector string ("$.ssn") or a
// mapping {path: "$.ssn", label: "ssn"}. An empty Label means the selector's default label.
type Field struct {
	Path  string `yaml:"path"`
	Label string `yaml:"label"`
	Index *Index `yaml:"index"` // request.encrypt only; nil for none
}

// UnmarshalYAML accepts a plain selector string or a {path, label} mapping.
func (f *Field) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*f = Field{}
		return n.Decode(&f.Path)
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i].Value; k != "path" && k != "label" && k != "index" {
				return fmt.Errorf("line %d: unknown field selector key %q (want path, label, index)", n.Content[i].Line, k)
			}
		}
		type plain Field
		var p plain
		if err := n.Decode(&p); err != nil {
			return err
		}
		*f = Field(p)
		return nil
	default:
		return fmt.Errorf("line %d: a field is a selector string or a {path, label, index} mapping", n.Line)
	}
}
