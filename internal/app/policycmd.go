package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/rkms/rkms/extproc/policy"
	"github.com/rkms/rkms/internal/config"
)

var policyCommand = command{name: "policy test", help: `usage: rkms policy test --config FILE --policy NAME [--response] [--path PATH] [--header NAME=VALUE]...
                        [--claims JSON] [--claim NAME=VALUE]... [--peer-uri-san URI] [--peer-dns-san NAME] < body.json

Prints what the policy does with each field of the JSON body on standard input: encrypt,
decrypt, refuse or left alone, with its JSON path, label and the key id (never a value), and
whether a request may create that key (create: on_demand | admin_only).
--response reads the body as a response (the key id still comes from --path and --header;
a {json:...} key id needs the request body, so give it with --request-body FILE).
For a policy with response.reveal, --response also prints what the caller described by
--claims (the verified JWT payload as a JSON object: lists such as "roles":["a","b"] or
"scope":"a b" match as they would from Envoy), --claim, --peer-*-san and --header would see
of each decrypted field: the action and the rule that chose it (reveal=...), and a summary
for every decrypted selector.
Exit status: 0 when the message would pass, 1 when rkms would refuse it, 2 on usage errors.
`}

// headerFlags collects repeated --header NAME=VALUE flags; it is a policy.Headers.
type headerFlags [][2]string

func (h *headerFlags) String() string { return "" }

func (h *headerFlags) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return errors.New("want NAME=VALUE")
	}
	*h = append(*h, [2]string{strings.ToLower(name), value})
	return nil
}

// claimFlags collects the verified JWT claims a {jwt:CLAIM} key id and reveal rules read
// (Envoy's jwt_authn verifies them in a real request): repeated --claim NAME=VALUE flags
// (string claims) and --claims JSON (a payload object, whose claims --claim may override).
type claimFlags map[string]any

func (c claimFlags) String() string { return "" }

func (c claimFlags) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return errors.New("want NAME=VALUE")
	}
	c[name] = value
	return nil
}

// jsonClaims is the --claims flag: it adds a JSON object's claims to c (without replacing
// claims --claim set, whatever the order of the flags).
type jsonClaims struct{ c claimFlags }

func (j jsonClaims) String() string { return "" }

func (j jsonClaims) Set(v string) error {
	var m map[string]any
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		return fmt.Errorf("want a JSON object: %w", err)
	}
	for k, x := range m {
		if _, set := j.c[k]; !set {
			j.c[k] = x
		}
	}
	return nil
}

// Claim implements policy.Claims as the ext_proc server reads a JWT payload: a string as is,
// an integer number in decimal.
func (c claimFlags) Claim(name string) (string, bool) {
	switch v := c[name].(type) {
	case string:
		return v, true
	case float64:
		if v == math.Trunc(v) && math.Abs(v) <= 1<<53 {
			return strconv.FormatInt(int64(v), 10), true
		}
	}
	return "", false
}

// HasClaim implements policy.ClaimMatcher.
func (c claimFlags) HasClaim(name, value string) bool { return policy.ClaimHolds(name, c[name], value) }

func (h *headerFlags) Len() int                      { return len(*h) }
func (h *headerFlags) At(i int) (name, value string) { return (*h)[i][0], (*h)[i][1] }

// createHelp says what a policy's create mode means for a key id that has no key yet.
func createHelp(m policy.CreateMode) string {
	if m == policy.CreateAdminOnly {
		return m.String() + " (sealing under a key id without a key is refused with 403; an operator creates it: GET /key?id=...)"
	}
	return m.String() + " (a key id without a key gets one on first seal, within kms.create_rate; over it: 429)"
}

func policyCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 0:
		return policyCommand.usageError(stderr, "")
	case isHelp(args[0]):
		return policyCommand.printHelp(nil, stdout)
	case args[0] != "test":
		return policyCommand.usageError(stderr, fmt.Sprintf("unknown subcommand %q", args[0]))
	}
	fs := policyCommand.flags(stderr)
	cfgPath := fs.String("config", "", "configuration file (YAML) holding the policy")
	name := fs.String("policy", "", "policy name")
	response := fs.Bool("response", false, "the body is a response body")
	path := fs.String("path", "/", "request path, for {path:N} key ids")
	reqBody := fs.String("request-body", "", "request body file, for {json:...} key ids with --response")
	headers := &headerFlags{}
	fs.Var(headers, "header", "request header NAME=VALUE, for {header:NAME} key ids (repeatable)")
	claims := claimFlags{}
	fs.Var(claims, "claim", "verified JWT claim NAME=VALUE, for {jwt:CLAIM} key ids and reveal rules (repeatable)")
	fs.Var(jsonClaims{claims}, "claims", "verified JWT payload as a JSON object, for {jwt:CLAIM} key ids and reveal rules")
	peerURI := fs.String("peer-uri-san", "", "verified client certificate URI SAN, for {peer:uri_san}")
	peerDNS := fs.String("peer-dns-san", "", "verified client certificate DNS SAN, for {peer:dns_san}")
	if code, ok := policyCommand.parse(fs, args[1:], stdout, stderr); !ok {
		return code
	}
	switch {
	case *cfgPath == "" || *name == "":
		return policyCommand.usageError(stderr, "--config and --policy are required")
	case fs.NArg() != 0:
		return policyCommand.usageError(stderr, fmt.Sprintf("unexpected arguments %v", fs.Args()))
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", *cfgPath, err)
		return 1
	}
	set, err := cfg.PolicySet() // compiled by config.Load
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", *cfgPath, err)
		return 1
	}
	var pol *policy.Policy
	for _, p := range set.Policies() {
		if p.Name() == *name {
			pol = p
		}
	}
	if pol == nil {
		fmt.Fprintf(stderr, "%s: no policy %q\n", *cfgPath, *name)
		return 2
	}
	body, err := io.ReadAll(io.LimitReader(stdin, 64<<20))
	if err != nil {
		fmt.Fprintf(stderr, "read body: %v\n", err)
		return 1
	}
	src := &policy.Source{Headers: headers, Path: policy.Canonical(*path), PeerURISAN: *peerURI, PeerDNSSAN: *peerDNS}
	if len(claims) > 0 {
		src.JWT = claims
	}
	if !*response {
		src.Body = body
	} else if *reqBody != "" {
		if src.Body, err = os.ReadFile(*reqBody); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	}
	keyID, err := pol.KeyID().Eval(src)
	if err != nil {
		keyID = "(none: " + err.Error() + ")"
	}
	findings, err := pol.ExplainFor(body, *response, keyID, src)
	if err != nil {
		fmt.Fprintf(stdout, "refuse     (body: %v)\n", err)
		return 1
	}
	dir := "request"
	if *response {
		dir = "response"
	}
	fmt.Fprintf(stdout, "policy %s, %s body, key id %s\n", pol.Name(), dir, keyID)
	fmt.Fprintf(stdout, "key creation: %s\n", createHelp(pol.Create()))
	refused := false
	for _, f := range findings {
		fmt.Fprintln(stdout, f)
		refused = refused || f.Action == policy.ActRefuse
	}
	if len(findings) == 0 {
		fmt.Fprintln(stdout, "(no selected or tagged field)")
	}
	if rs := pol.Reveals(); *response && rs != nil {
		fmt.Fprintln(stdout, "reveal for this caller (first rule whose when matches and that names the field; else the default):")
		for i, d := range rs.Resolve(nil, src) {
			fmt.Fprintf(stdout, "  %-24s %s (rule %s)\n", rs.Fields()[i], d.Action, d.Rule)
		}
	}
	if refused {
		fmt.Fprintln(stdout, "result: refused")
		return 1
	}
	fmt.Fprintln(stdout, "result: passes")
	return 0
}
