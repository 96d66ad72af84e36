package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/extproc/policy"
	"github.com/rkms/rkms/internal/config"
)

const sealUsage = `usage: rkms seal --config FILE --policy NAME [--response] [KEY ID] [KEYS] [INPUT] < doc.json > sealed.json
       rkms seal --value --key-id ID [--label L] [--mode randomized|deterministic] [--context C] [--json] [KEYS] < value
       rkms open --config FILE --policy NAME [--request] [KEY ID] [KEYS] [INPUT] < sealed.json > doc.json
       rkms open --value [--key-id ID] [--label L] [--context C] [--json] [KEYS] < ciphertext

seal encrypts the fields of a JSON document that one direction of a policy encrypts (the request
side; --response: the response side), open decrypts those that it decrypts (the response side;
--request: the request side of a policy whose requests decrypt), with the code ext_proc runs:
same format, selectors, labels, mode, record binding and tripwires. What one seals, the other
opens, and Envoy opens what seal sealed. rkms rewrap moves sealed fields to a key's current
version (rkms rewrap --help).

KEY ID: --key-id ID, or computed from the policy's key_id (and context) template with the inputs
rkms policy test takes: --claim NAME=VALUE, --header NAME=VALUE, --path PATH, --peer-uri-san,
--peer-dns-san; a {json:...} template reads the document (each NDJSON record) itself, or on the
response side the --request-body FILE when given. --context C sets the record binding instead
of the policy's context template.

INPUT: one JSON document (at most 64 MiB), or NDJSON with --format ndjson (the default for an
--in FILE named .ndjson or .jsonl): one record per line, each with its own key id, in any size.
  --in FILE, --out FILE    instead of standard input and output (--out is created with mode 0600)
  -j N                     parallel workers (default: the CPUs); output stays in input order
  --reject FILE            a record that fails is written there as {"line":N,"error":{"kind":K,
                           "message":M}} and the run goes on. The record itself is never copied
                           (it may hold plaintext): find it in the input by its line number.
                           Without --reject the first failed record stops the run: the records
                           before it are written, and the message names the line.
  --from-line N            resume: skip lines 1..N-1 (output starts with line N's record)
  --max-record BYTES       longest line (default 1 MiB, at most 64 MiB): a longer one is a failed
                           record of kind too_large, never read into memory whole
  --summary-json FILE      the run's counts as JSON (records, written, failed, fields, errors by
                           kind, resume_from_line); the same summary is printed on stderr
  --progress/--no-progress the progress line on stderr (records/s, MB/s, ETA for an --in file);
                           by default only when stderr is a terminal
Blank lines are skipped; CRLF line endings are read, LF written. Error kinds: not_json,
too_large, key_id (the key id or context template cannot be computed from the record),
bad_input (a tripwire, a field already encrypted, plaintext where a ciphertext is expected),
auth (a ciphertext that does not open here), key_unknown, key_limited, unavailable, internal.

--value seals one value read from standard input (a string, the trailing newline dropped;
--json: one JSON value) and prints its ciphertext, or opens one ciphertext and prints the value
(a JSON string decoded; --json: the JSON text). The label defaults to "value": to paste a value
into a document, give the label of its field (the selector's last member name by default).

KEYS: --server URL takes the keys from a running rkms's admin API (GET /key?id=...), with the
token in $RKMS_ADMIN_TOKEN or --token-file (default: the config's admin.token_file). Without it,
the keys come from the configured keyring (--config, or the embedded defaults in ./rkms-data),
opened as rkms serve opens it; an embedded store held by a running rkms needs --server. A run
looks each key id up once (an NDJSON run keeps the version that was current when it started,
until that version reaches keyring.rotation.max_seals: seals count toward it as rkms serve's do,
with --server through the admin API's POST /key/seals).

Output never holds key material; errors, the reject file and the summary never hold a value.
Exit status: 0 done (every record written), 1 refused or failed (some record failed), 2 usage
error.
`

// sealOp is what a seal or open command does: the operation and the words it prints.
type sealOp struct {
	name string    // "seal" or "open"
	op   policy.Op // Encrypt or Decrypt
}

// sealFlags are the flags of rkms seal and rkms open.
type sealFlags struct {
	cfgPath  string
	policy   string
	request  bool // open: the request side
	response bool // seal: the response side
	value    bool
	keyID    string
	label    string
	mode     string
	context  *string // nil: the policy's context template (documents) or none (values)
	json     bool
	timeout  time.Duration

	// The request, for the policy's templates (as rkms policy test).
	path    string
	reqBody string
	headers headerFlags
	claims  claimFlags
	peerURI string
	peerDNS string

	keys keyFlags
	bulk bulkFlags
}

// parseSealFlags parses the flags of op; it prints the problem and returns false on a usage error.
func parseSealFlags(op sealOp, args []string, stderr io.Writer) (*sealFlags, bool) {
	f := &sealFlags{claims: claimFlags{}}
	fs := flag.NewFlagSet(op.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	help := sealUsage
	if op.name == "rewrap" {
		help = rewrapUsage
	}
	short := command{name: op.name, help: help}
	fs.Usage = func() { short.usageError(stderr, "") } // after the flag package's message
	fs.StringVar(&f.cfgPath, "config", "", "configuration file (YAML): the policy, and the keyring without --server")
	fs.StringVar(&f.policy, "policy", "", "policy name")
	if op.op == policy.Encrypt {
		fs.BoolVar(&f.response, "response", false, "seal what the policy's response side encrypts")
	} else {
		fs.BoolVar(&f.request, "request", false, "open what the policy's request side decrypts")
	}
	fs.BoolVar(&f.value, "value", false, "one value (seal) or ciphertext (open) on standard input")
	fs.StringVar(&f.keyID, "key-id", "", "key id (instead of the policy's key_id template)")
	fs.StringVar(&f.label, "label", "value", "label of the --value (its field's label)")
	if op.op == policy.Encrypt {
		fs.StringVar(&f.mode, "mode", "randomized", "mode of the --value: randomized (random) or deterministic")
	}
	fs.Func("context", "record binding (instead of the policy's context template)", func(s string) error {
		f.context = &s
		return nil
	})
	fs.BoolVar(&f.json, "json", false, "the --value is JSON text (seal: input; open: output)")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "bound on the whole command (key lookups included)")
	fs.StringVar(&f.path, "path", "/", "request path, for {path:N} templates")
	fs.StringVar(&f.reqBody, "request-body", "", "request body file, for {json:...} templates on the response side")
	fs.Var(&f.headers, "header", "request header NAME=VALUE, for {header:NAME} templates (repeatable)")
	fs.Var(f.claims, "claim", "verified JWT claim NAME=VALUE, for {jwt:CLAIM} templates (repeatable)")
	fs.StringVar(&f.peerURI, "peer-uri-san", "", "verified client certificate URI SAN, for {peer:uri_san}")
	fs.StringVar(&f.peerDNS, "peer-dns-san", "", "verified client certificate DNS SAN, for {peer:dns_san}")
	f.keys.register(fs)
	f.bulk.register(fs)
	if err := fs.Parse(args); err != nil {
		return nil, false
	}
	if msg := f.usageProblem(op, fs.NArg()); msg != "" {
		short.usageError(stderr, msg)
		return nil, false
	}
	return f, true
}

// usageProblem returns what is wrong with the combination of flags, or "".
func (f *sealFlags) usageProblem(op sealOp, nargs int) string {
	requestInputs := len(f.headers) > 0 || len(f.claims) > 0 || f.peerURI != "" || f.peerDNS != "" || f.path != "/" || f.reqBody != ""
	switch {
	case nargs != 0:
		return "unexpected arguments (the input is read from standard input or --in)"
	case f.value && op.name == "rewrap":
		return "rewrap has no --value: it rewraps the fields of documents"
	case f.value && f.policy != "":
		return "--value and --policy exclude each other"
	case f.value && op.op == policy.Encrypt && f.keyID == "":
		return "--value needs --key-id"
	case f.value && requestInputs:
		return "--value takes its key id from --key-id, not from request inputs"
	case !f.value && (f.cfgPath == "" || f.policy == ""):
		return "a document needs --config and --policy (or seal one value with --value)"
	case f.keyID != "" && requestInputs:
		return "give --key-id or the request inputs that compute it, not both"
	case f.value && (f.bulk.in != "" || f.bulk.out != "" || f.bulk.format != "" || f.bulk.reject != "" || f.bulk.fromLine != 1 || f.bulk.summaryJSON != ""):
		return "--value reads standard input and writes standard output; --in, --out, --format, --reject, --from-line and --summary-json are for documents"
	}
	return f.bulk.resolve()
}

func sealCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runSeal(ctx, sealOp{"seal", policy.Encrypt}, args, stdin, stdout, stderr)
}

func openCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runSeal(ctx, sealOp{"open", policy.Decrypt}, args, stdin, stdout, stderr)
}

// maxSealInput bounds what seal, open and inspect read from standard input.
const maxSealInput = 64 << 20

func runSeal(ctx context.Context, op sealOp, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprint(stdout, sealUsage)
		return 0
	}
	f, ok := parseSealFlags(op, args, stderr)
	if !ok {
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "rkms %s: %v\n", op.name, err)
		return 1
	}
	cfg, err := loadSealConfig(f.cfgPath)
	if err != nil {
		return fail(err)
	}
	var pol *policy.Policy
	if !f.value {
		if pol, err = findPolicy(cfg, f.cfgPath, f.policy); err != nil {
			return fail(err)
		}
	}
	// --timeout bounds the whole command for one value or document, and each key lookup of an
	// NDJSON run (which takes as long as its input).
	lookupTimeout := time.Duration(0)
	if f.bulk.format == "ndjson" {
		lookupTimeout = f.timeout
	} else {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.timeout)
		defer cancel()
	}
	keys, closeKeys, err := f.keys.open(ctx, cfg, f.cfgPath != "", stderr)
	if err != nil {
		return fail(err)
	}
	defer closeKeys()
	if !f.value {
		return f.runDocumentBulk(ctx, op, cfg, pol, newMemoKeys(keys, lookupTimeout), stdin, stdout, stderr)
	}
	in, err := io.ReadAll(io.LimitReader(stdin, maxSealInput+1))
	if err != nil {
		return fail(fmt.Errorf("read standard input: %w", err))
	}
	if len(in) > maxSealInput {
		return fail(fmt.Errorf("standard input is larger than %d bytes", maxSealInput))
	}
	out, err := f.runValue(ctx, op, keys, in)
	if err != nil {
		return fail(err)
	}
	if _, err := stdout.Write(out); err != nil {
		return fail(fmt.Errorf("write standard output: %w", err))
	}
	return 0
}

// loadSealConfig loads path, or the embedded defaults when path is "" (as rkms serve does).
func loadSealConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Default(), nil
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// findPolicy returns the policy named name of cfg (compiled by config.Load).
func findPolicy(cfg *config.Config, path, name string) (*policy.Policy, error) {
	set, err := cfg.PolicySet()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, p := range set.Policies() {
		if p.Name() == name {
			return p, nil
		}
	}
	return nil, fmt.Errorf("%s: no policy %q", path, name)
}

// evalIDs returns the key id and record binding of a document: --key-id and --context when
// given, else the policy's templates evaluated on the request the flags describe. The request
// body of {json:...} templates is the document itself, except on the response side with
// --request-body (reqBody, read once): a record exported from the application carries the
// members its key id was computed from when it was sealed.
func (f *sealFlags) evalIDs(pol *policy.Policy, doc []byte, response bool, reqBody []byte) (keyID, binding string, err error) {
	src := f.source(doc, response, reqBody)
	if keyID, err = f.keyIDOf(pol, src); err != nil {
		return "", "", err
	}
	if binding, err = f.bindingOf(pol, src); err != nil {
		return "", "", err
	}
	return keyID, binding, nil
}

// source is the request the flags describe, with doc (or reqBody) as its body.
func (f *sealFlags) source(doc []byte, response bool, reqBody []byte) *policy.Source {
	src := &policy.Source{Headers: &f.headers, Path: policy.Canonical(f.path), PeerURISAN: f.peerURI, PeerDNSSAN: f.peerDNS}
	if len(f.claims) > 0 {
		src.JWT = f.claims
	}
	src.Body = doc
	if response && reqBody != nil {
		src.Body = reqBody
	}
	return src
}

// errKeyIDTemplate marks a key id that the policy's template cannot compute from the source.
var errKeyIDTemplate = errors.New("key id template")

// keyIDOf returns --key-id, or the policy's key id computed from src (an error wrapping
// errKeyIDTemplate when it cannot be).
func (f *sealFlags) keyIDOf(pol *policy.Policy, src *policy.Source) (string, error) {
	if f.keyID != "" {
		if err := envelope.ValidateKeyID(f.keyID); err != nil {
			return "", fmt.Errorf("--key-id: %w", err)
		}
		return f.keyID, nil
	}
	keyID, err := pol.KeyID().Eval(src)
	if err != nil {
		return "", fmt.Errorf("%w: key id of policy %s: %w (give the request inputs: --claim, --header, --path, ...; or --key-id)", errKeyIDTemplate, pol.Name(), err)
	}
	return keyID, nil
}

// bindingOf returns --context, or the policy's record binding computed from src ("" for none).
func (f *sealFlags) bindingOf(pol *policy.Policy, src *policy.Source) (string, error) {
	switch {
	case f.context != nil:
		return *f.context, nil
	case pol.Context() != nil:
		binding, err := pol.Context().Eval(src)
		if err != nil {
			return "", fmt.Errorf("context of policy %s: %w (give the request inputs, or --context)", pol.Name(), err)
		}
		return binding, nil
	}
	return "", nil
}

// trimLine drops one trailing newline (LF or CRLF), as a shell's echo or here-string adds.
func trimLine(b []byte) []byte {
	switch {
	case len(b) >= 2 && b[len(b)-2] == '\r' && b[len(b)-1] == '\n':
		return b[:len(b)-2]
	case len(b) >= 1 && b[len(b)-1] == '\n':
		return b[:len(b)-1]
	}
	return b
}
