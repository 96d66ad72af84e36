package load

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/rkms/rkms/extproc/policy"
	"github.com/rkms/rkms/internal/devjwt"
)

// PolicyName is the policy every load request uses (named by the route, as envoy/ingress.yaml
// does for /patients).
const PolicyName = "patients"

// The tenant is the "tenant" claim of the token Envoy verified (envoy/ingress.yaml's jwt_authn),
// which rkms reads from the forwarded payload; the key id is "tenant-" + its value. Through
// Envoy the load client sends tokens of internal/testing/envoytest's test key; directly, [Exchange]
// presents the verified payload as Envoy would.

// Policies returns the configuration of the rkms server under load: the patients policy of
// envoy/ingress.yaml, three fields sealed in requests and opened in responses (the direct
// comparison), and the encrypt-only and decrypt-only policies of the route kinds measured
// through Envoy ([WritePolicy], [ReadPolicy]).
func Policies() []policy.Config {
	fields := []policy.Field{{Path: "$.ssn"}, {Path: "$.contact.email"}, {Path: "$.cards[*].number"}}
	return append([]policy.Config{{
		Name:     PolicyName,
		Match:    policy.Match{PathPrefix: "/patients"},
		KeyID:    "tenant-{jwt:" + devjwt.TenantClaim + "}",
		Request:  policy.Direction{Encrypt: fields},
		Response: policy.Direction{Decrypt: fields},
	}}, routePolicies()...)
}

// TaggedFields is how many values of [Body] the policy seals (and opens).
const TaggedFields = 3

// Body returns a JSON patient record of exactly size bytes (at least 256) with the three tagged
// fields of [Policies] and an untagged padding member.
func Body(size int) ([]byte, error) {
	const head = `{"name":"Ada Lovelace","ssn":"123-45-6789","contact":{"email":"ada@example.com","phone":"+44 20 7946 0000"},` +
		`"cards":[{"number":"4111111111111111","exp":"12/30"}],"age":36,"notes":"`
	const tail = `"}`
	pad := size - len(head) - len(tail)
	if pad < 0 {
		return nil, fmt.Errorf("body size %d is below the minimum %d", size, len(head)+len(tail))
	}
	b := make([]byte, 0, size)
	b = append(b, head...)
	b = append(b, strings.Repeat("lorem ipsum ", pad/12+1)[:pad]...)
	b = append(b, tail...)
	return b, nil
}

// KeyID returns the key id of tenant n, and TenantValue the claim value that names it.
func KeyID(n int) string       { return "tenant-" + TenantValue(n) }
func TenantValue(n int) string { return "t" + strconv.Itoa(n) }

// checkSealed reports whether body holds exactly TaggedFields rkms ciphertexts in the tagged
// fields (a sanity check that the server under load really encrypts).
func checkSealed(body []byte) error {
	n := strings.Count(string(body), `"rkms:`)
	if n != TaggedFields {
		return fmt.Errorf("sealed body has %d ciphertexts, want %d", n, TaggedFields)
	}
	return nil
}
