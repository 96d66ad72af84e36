package app

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/rkms/rkms/extproc/policy"
	"github.com/rkms/rkms/internal/config"
)

var policyCommand = command{name: "policy test", help: `usage: rkms policy test --config FILE --policy NAME [--response] [--path PATH] [--header NAME=VALUE]...
                        [--claim NAME=VALUE]... [--peer-uri-san URI] [--peer-dns-san NAME] < body.json

Prints what the policy does with each field of the JSON body on standard input: encrypt,
decrypt, refuse or left alone, with its JSON path, label and the key id (never a value), and
whether a request may create that key (create: on_demand | admin_only).
--response reads the body as a response (the key id still comes from --path and --header;
a {json:...} key id needs the request body, so give it with --request-body FILE).
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

// claimFlags collects repeated --claim NAME=VALUE flags: the verified JWT claims a
// {jwt:CLAIM} key id reads (Envoy's jwt_authn verifies them in a real request).
type claimFlags map[string]string

func (c claimFlags) String() string { return "" }

func (c claimFlags) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return errors.New("want NAME=VALUE")
	}
	c[name] = value
	return nil
}

// Claim implements policy.Claims.
func (c claimFlags) Claim(name string) (string, bool) {
	v, ok := c[name]
	return v, ok
}

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
	fs.Var(claims, "claim", "verified JWT claim NAME=VALUE, for {jwt:CLAIM} key ids (repeatable)")
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
	findings, err := pol.Explain(body, *response, keyID)
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
	if refused {
		fmt.Fprintln(stdout, "result: refused")
		return 1
	}
	fmt.Fprintln(stdout, "result: passes")
	return 0
}
