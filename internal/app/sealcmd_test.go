package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rkms/rkms/store/embedded"
)

// cli runs one rkms command in-process and returns its exit status and outputs.
func cli(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Main(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// sealPolicies are the policies of the seal/open tests: each kind of key id template, a record
// binding, both modes, labels that differ from member names, and an egress policy whose
// requests decrypt.
const sealPolicies = `policies:
  - name: patients
    match: {path_prefix: /patients}
    key_id: "tenant-{jwt:tenant}"
    request: {encrypt: ["$..ssn", "$..contact.email", "$..cards[*].number"]}
    response:
      decrypt: ["$.ssn", "$.contact.email", "$.cards[*].number", "$.items[*].ssn"]
  - name: cards
    match: {path_prefix: /cards}
    key_id: "shop-{header:x-shop}"
    mode: deterministic
    request: {encrypt: [{path: "$.pan", label: card-number}]}
    response: {decrypt: [{path: "$.pan", label: card-number}]}
  - name: records
    match: {path_prefix: /records}
    key_id: "records"
    context: "record-{path:1}"
    request: {encrypt: ["$.note"]}
    response: {decrypt: ["$.note"]}
  - name: orders
    match: {path_prefix: /orders}
    key_id: "org-{json:$.org}"
    request: {encrypt: ["$.customer.ssn"]}
    response: {decrypt: ["$.customer.ssn"]}
  - name: partner
    match: {path_prefix: /partner}
    key_id: "partner-{path:1}"
    request: {decrypt: ["$.ssn"]}
    response: {encrypt: ["$.ssn"]}
`

// sealConfig writes a configuration whose keyring is on disk in a temporary directory: three
// software KMS regions and an embedded store, as `make run` has, plus sealPolicies.
func sealConfig(t *testing.T) (path, dir string) {
	t.Helper()
	dir = t.TempDir()
	return writeConfig(t, dir, fmt.Sprintf("data_dir: %[1]s/data\nadmin: {token_file: %[1]s/data/admin.token}\nstore: {type: embedded, embedded: {path: %[1]s/data/keys.db}}\n%[2]s",
		dir, sealPolicies)), dir
}

// TestSealOpenRoundTrip: for each policy, rkms seal encrypts every field its encrypting side
// selects (no tagged plaintext left) and rkms open, with the same request inputs, gives back
// the exact input; deterministic policies seal equal values equally.
func TestSealOpenRoundTrip(t *testing.T) {
	cfg, dir := sealConfig(t)
	reqBody := filepath.Join(dir, "order.json")
	if err := os.WriteFile(reqBody, []byte(`{"org":"acme","customer":{"ssn":"000-11-2222"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		policy     string
		inputs     []string // request inputs for the key id and context templates
		sealArgs   []string // direction flags of seal
		openArgs   []string // and of open
		doc        string
		secrets    []string // tagged plaintexts that must not survive sealing
		ciphertext int      // ciphertexts in the sealed document
	}{
		{name: "jwt claim, nested selectors", policy: "patients", inputs: []string{"--claim", "tenant=acme"},
			doc:     `{"name":"Ann","ssn":"123-45-6789","contact":{"email":"ann@example.com"},"cards":[{"number":"4111111111111111"},{"number":4222}]}`,
			secrets: []string{"123-45-6789", "ann@example.com", "4111111111111111", "4222"}, ciphertext: 4},
		{name: "header key id, deterministic, label", policy: "cards", inputs: []string{"--header", "X-Shop=s1"},
			doc: `{"pan":"5500 0000 0000 0004","amount":12}`, secrets: []string{"5500 0000 0000 0004"}, ciphertext: 1},
		{name: "record binding from the path", policy: "records", inputs: []string{"--path", "/records/42"},
			doc: `{"note":{"text":"allergic to penicillin","since":2019}}`, secrets: []string{"penicillin"}, ciphertext: 1},
		{name: "key id from the request body", policy: "orders", inputs: []string{"--request-body", reqBody},
			sealArgs: []string{}, doc: `{"org":"acme","customer":{"ssn":"000-11-2222"}}`, secrets: []string{"000-11-2222"}, ciphertext: 1},
		{name: "explicit key id", policy: "patients", inputs: []string{"--key-id", "tenant-acme"},
			doc: `{"ssn":null,"cards":[]}`, ciphertext: 1}, // null is sealed too (ext_proc seals every selected value)
		{name: "egress: response side seals, request side opens", policy: "partner", inputs: []string{"--path", "/partner/p7"},
			sealArgs: []string{"--response"}, openArgs: []string{"--request"},
			doc: `{"ssn":"999-88-7777"}`, secrets: []string{"999-88-7777"}, ciphertext: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sealInputs := tc.inputs
			if tc.policy == "orders" {
				sealInputs = nil // the request body is the document itself
			}
			args := append([]string{"seal", "--config", cfg, "--policy", tc.policy}, tc.sealArgs...)
			code, sealed, stderr := cli(t, tc.doc, append(args, sealInputs...)...)
			if code != 0 {
				t.Fatalf("seal: exit %d: %s", code, stderr)
			}
			if n := strings.Count(sealed, `"rkms:`); n != tc.ciphertext {
				t.Fatalf("sealed document has %d ciphertexts, want %d: %s", n, tc.ciphertext, sealed)
			}
			for _, s := range tc.secrets {
				if strings.Contains(sealed, s) {
					t.Fatalf("sealed document still holds %q: %s", s, sealed)
				}
			}
			args = append([]string{"open", "--config", cfg, "--policy", tc.policy}, tc.openArgs...)
			code, opened, stderr := cli(t, sealed, append(args, tc.inputs...)...)
			if code != 0 {
				t.Fatalf("open: exit %d: %s", code, stderr)
			}
			if opened != tc.doc {
				t.Fatalf("open(seal(doc)) = %s, want %s", opened, tc.doc)
			}
		})
	}

	// Deterministic: the same value under the same key, label and context seals the same.
	_, a, _ := cli(t, `{"pan":"5500"}`, "seal", "--config", cfg, "--policy", "cards", "--header", "x-shop=s1")
	_, b, _ := cli(t, `{"pan":"5500"}`, "seal", "--config", cfg, "--policy", "cards", "--header", "x-shop=s1")
	if a != b || a == "" {
		t.Errorf("deterministic policy sealed one value twice as %s and %s", a, b)
	}
}

// TestSealOpenValue: one value sealed with --value opens with --value, as a string or (--json)
// as JSON text, and it stands for the field of a document with the same key id and label.
func TestSealOpenValue(t *testing.T) {
	cfg, _ := sealConfig(t)
	tests := []struct {
		name      string
		in        string
		sealFlags []string
		openFlags []string
		want      string
	}{
		{"string", "123-45-6789\n", nil, nil, "123-45-6789\n"},
		{"string with quotes and <html>", `say "hi" <b>` + "\n", nil, nil, `say "hi" <b>` + "\n"},
		{"string opened as JSON", "x&y\n", nil, []string{"--json"}, `"x&y"` + "\n"},
		{"JSON number", "42\n", []string{"--json"}, []string{"--json"}, "42\n"},
		{"JSON object", `{"a": [1, 2]}`, []string{"--json"}, nil, `{"a": [1, 2]}` + "\n"},
		{"deterministic", "abc\n", []string{"--mode", "deterministic"}, nil, "abc\n"},
		{"deterministic, short name", "abc\n", []string{"--mode", "random"}, nil, "abc\n"},
		{"context", "abc\n", []string{"--context", "rec-1"}, []string{"--context", "rec-1"}, "abc\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"seal", "--config", cfg, "--value", "--key-id", "tenant-v", "--label", "ssn"}, tc.sealFlags...)
			code, ct, stderr := cli(t, tc.in, args...)
			if code != 0 || !strings.HasPrefix(ct, "rkms:") || !strings.HasSuffix(ct, "\n") {
				t.Fatalf("seal --value: exit %d, %q, %s", code, ct, stderr)
			}
			args = append([]string{"open", "--config", cfg, "--value", "--key-id", "tenant-v", "--label", "ssn"}, tc.openFlags...)
			code, got, stderr := cli(t, ct, args...)
			if code != 0 || got != tc.want {
				t.Fatalf("open --value: exit %d, %q, want %q: %s", code, got, tc.want, stderr)
			}
		})
	}

	// A value sealed under the policy's key id and its field's label opens inside a document.
	_, ct, _ := cli(t, "123-45-6789\n", "seal", "--config", cfg, "--value", "--key-id", "tenant-acme", "--label", "ssn")
	doc := `{"ssn":"` + strings.TrimSpace(ct) + `"}`
	code, got, stderr := cli(t, doc, "open", "--config", cfg, "--policy", "patients", "--claim", "tenant=acme")
	if code != 0 || got != `{"ssn":"123-45-6789"}` {
		t.Fatalf("a --value ciphertext in a document: exit %d, %s %s", code, got, stderr)
	}
	// Deterministic values repeat.
	_, a, _ := cli(t, "v\n", "seal", "--config", cfg, "--value", "--key-id", "tenant-v", "--mode", "deterministic")
	_, b, _ := cli(t, "v\n", "seal", "--config", cfg, "--value", "--key-id", "tenant-v", "--mode", "deterministic")
	if a != b {
		t.Errorf("deterministic --value sealed twice as %s and %s", a, b)
	}
}

// TestSealOpenRefusals: every refusal exits 1 (2 for usage errors), says why, and neither
// output holds the plaintext: a ciphertext opened under another tenant's key id, a tampered
// ciphertext, the wrong label, a document that already holds a ciphertext (ext_proc's
// tripwire) or a tagged field where the policy does not encrypt it.
func TestSealOpenRefusals(t *testing.T) {
	cfg, _ := sealConfig(t)
	const secret = "SECRET-123-45-6789"
	doc := `{"ssn":"` + secret + `"}`
	code, sealed, stderr := cli(t, doc, "seal", "--config", cfg, "--policy", "patients", "--claim", "tenant=acme")
	if code != 0 {
		t.Fatalf("seal: %d %s", code, stderr)
	}
	_, value, _ := cli(t, secret, "seal", "--config", cfg, "--value", "--key-id", "tenant-acme", "--label", "ssn")
	tampered := string(tamper(t, []byte(sealed)))
	tamperedValue := string(tamper(t, []byte(`"`+strings.TrimSpace(value)+`"`)))
	tests := []struct {
		name  string
		stdin string
		args  []string
		code  int
		want  string // in stderr
	}{
		{"another tenant's key id", sealed, []string{"open", "--config", cfg, "--policy", "patients", "--claim", "tenant=evil"}, 1, "authentication failed"},
		{"wrong --key-id", sealed, []string{"open", "--config", cfg, "--policy", "patients", "--key-id", "tenant-evil"}, 1, "authentication failed"},
		{"tampered document", tampered, []string{"open", "--config", cfg, "--policy", "patients", "--claim", "tenant=acme"}, 1, "authentication failed"},
		{"value under another --key-id", value, []string{"open", "--config", cfg, "--value", "--key-id", "tenant-evil", "--label", "ssn"}, 1, "authentication failed"},
		{"tampered value", tamperedValue, []string{"open", "--config", cfg, "--value", "--label", "ssn"}, 1, "authentication failed"},
		{"wrong label", value, []string{"open", "--config", cfg, "--value", "--label", "email"}, 1, "authentication failed"},
		{"missing key version", `"rkms:AQEKdGVuYW50LWFjbWUAAAAJdZ_WEgR_za2xnnDqmMysYRgPhC9ukioYuP5oVGB14aJyOFyt-x6hAFM"`,
			[]string{"open", "--config", cfg, "--value", "--label", "ssn"}, 1, "authentication failed"},
		{"sealing a sealed document", sealed, []string{"seal", "--config", cfg, "--policy", "patients", "--claim", "tenant=acme"}, 1, "already encrypted"},
		{"tagged field where the policy does not encrypt it", `{"email":"` + secret + `"}`,
			[]string{"seal", "--config", cfg, "--policy", "patients", "--claim", "tenant=acme"}, 1, "has the name of tagged field email"},
		{"ciphertext elsewhere in a request", `{"note":"` + strings.TrimSpace(value) + `","pan":"1"}`,
			[]string{"seal", "--config", cfg, "--policy", "cards", "--header", "x-shop=s"}, 1, "clients never send ciphertexts"},
		{"key id template without its input", doc, []string{"seal", "--config", cfg, "--policy", "patients"}, 1, "--claim"},
		{"no such policy", doc, []string{"seal", "--config", cfg, "--policy", "nope", "--key-id", "k"}, 1, `no policy "nope"`},
		{"open where the side decrypts nothing", sealed, []string{"open", "--config", cfg, "--policy", "patients", "--request", "--key-id", "k"}, 1, "decrypts no field"},
		{"invalid --key-id", "x", []string{"seal", "--config", cfg, "--value", "--key-id", "bad id"}, 1, "invalid key id"},
		{"--key-id and claims", doc, []string{"seal", "--config", cfg, "--policy", "patients", "--key-id", "k", "--claim", "tenant=a"}, 2, "not both"},
		{"--value without --key-id", "x", []string{"seal", "--config", cfg, "--value"}, 2, "--key-id"},
		{"document without a policy", doc, []string{"seal", "--config", cfg}, 2, "--policy"},
		{"not a ciphertext", "hello", []string{"open", "--config", cfg, "--value"}, 1, "malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := cli(t, tc.stdin, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, want %d; stderr %q, want it to contain %q", code, tc.code, stderr, tc.want)
			}
			if tc.code != 0 && stdout != "" {
				t.Errorf("a refusal wrote to stdout: %q", stdout)
			}
			if strings.Contains(stderr, secret) {
				t.Errorf("stderr holds the plaintext: %s", stderr)
			}
		})
	}
}

// TestSealLockedStore: while a process holds the embedded store (a running rkms), seal fails
// within about the store's lock timeout and says to use --server with the admin API's URL.
func TestSealLockedStore(t *testing.T) {
	cfg, dir := sealConfig(t)
	if code, _, stderr := cli(t, "x", "seal", "--config", cfg, "--value", "--key-id", "k"); code != 0 {
		t.Fatalf("seal: %d %s", code, stderr) // creates the store
	}
	st, err := embedded.Open(filepath.Join(dir, "data", "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	start := time.Now()
	code, stdout, stderr := cli(t, "x", "seal", "--config", cfg, "--value", "--key-id", "k")
	if code != 1 || stdout != "" || !strings.Contains(stderr, "locked") || !strings.Contains(stderr, "--server http://127.0.0.1:8080") {
		t.Fatalf("locked store: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if d := time.Since(start); d > embedded.LockTimeout+3*time.Second {
		t.Errorf("locked store: failed after %v, want about %v", d, embedded.LockTimeout)
	}
}

// TestSealHelp: the commands answer --help on stdout with status 0, and rkms --help lists them.
func TestSealHelp(t *testing.T) {
	for _, cmd := range []string{"seal", "open", "inspect"} {
		code, out, _ := cli(t, "", cmd, "--help")
		if code != 0 || !strings.Contains(out, "usage: rkms ") || !strings.Contains(out, "rkms "+cmd+" ") {
			t.Errorf("rkms %s --help: %d %q", cmd, code, out)
		}
		_, out, _ = cli(t, "", "--help")
		if !strings.Contains(out, "rkms "+cmd+" ") {
			t.Errorf("rkms --help does not list %s:\n%s", cmd, out)
		}
	}
}

// jsonField returns the string value of member name of the JSON object doc.
func jsonField(t *testing.T, doc, name string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatalf("%v: %s", err, doc)
	}
	s, _ := m[name].(string)
	return s
}
