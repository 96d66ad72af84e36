package config

import (
	"errors"
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files of the tests")

// TestCheckReportGolden is defect 5 of issue 15: a file with many mistakes of every kind (YAML
// types, unknown keys, bad values, policy errors) gets every problem reported at once, each on
// its own line with its line and key path, in line order.
func TestCheckReportGolden(t *testing.T) {
	_, err := Load("testdata/check/mistakes.yaml")
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("want Problems, got %v", err)
	}
	got := ps.Report()
	const golden = "testdata/check/mistakes.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("report differs from %s (go test -run TestCheckReportGolden -update to accept)\ngot:\n%s\nwant:\n%s", golden, got, want)
	}
}

// TestProblemsAllAtOnce: type errors do not hide the other problems; unknown keys carry their
// key path and a suggestion; a policy problem points at the offending key.
func TestProblemsAllAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string // each a whole line of the report
	}{
		{"type error and bad value", "cache:\n  max_keys: many\nlog: {level: loud}\n",
			[]string{"line 2: cache.max_keys: must be a whole number (got \"many\")", "line 3: log.level: must be one of debug, info, warn, error (got \"loud\")"}},
		{"unknown key with suggestion", "admin:\n  listen: 127.0.0.1:8080\n  tokn: x\n",
			[]string{"line 3: admin.tokn: unknown key (did you mean token_file?)"}},
		{"unknown key without suggestion", "admin:\n  zzzzzz: x\n",
			[]string{"line 2: admin.zzzzzz: unknown key (known: listen, grpc_listen, token_file, tls, credentials)"}},
		{"unknown top-level key", "polices: []\n", []string{"line 1: polices: unknown key (did you mean policies?)"}},
		{"unknown key in a list entry", "kms:\n  regions:\n    - name: a\n      keyid: b\n",
			[]string{"line 4: kms.regions[0].keyid: unknown key (did you mean key_id?)"}},
		{"duration", "kms:\n  timeout: soon\n", []string{"line 2: kms.timeout: must be a duration such as 500ms, 30s or 1m (got \"soon\")"}},
		{"mapping for a scalar", "data_dir: {a: b}\n", []string{"line 1: data_dir: must be a string (got a mapping)"}},
		{"not a mapping at all", "hello\n", []string{"line 1: must be a mapping of keys (got \"hello\")"}},
		{"scalar for a mapping", "admin: yes\n", []string{"line 1: admin: must be a mapping of keys (got \"yes\")"}},
		{"policy error at its key", "policies:\n  - name: p\n    key_id: k\n    mode: sometimes\n    request:\n      encrypt: [\"$.a\"]\n",
			[]string{`line 4: policies[0].mode: "sometimes" is not "randomized" or "deterministic"`}},
		{"policy selector at its entry", "policies:\n  - name: p\n    key_id: k\n    request:\n      encrypt:\n        - \"$.a\"\n        - \"$.b[\"\n",
			[]string{`line 7: policies[0].request.encrypt[1]: selector "$.b[": `}},
		{"reveal types", "policies:\n  - name: p\n    key_id: k\n    response:\n      decrypt: [\"$.a\"]\n      reveal:\n        redact_as: [x]\n        rules:\n" +
			"          - when: {jwt: {role: [a]}, peer: x}\n            fields: {\"$.a\": {mask: last4}}\n            nmae: r\n",
			[]string{`line 7: policies[0].response.reveal.redact_as: must be a string (got a list)`,
				`line 9: policies[0].response.reveal.rules[0].when.jwt.role: must be a string (got a list)`,
				`line 9: policies[0].response.reveal.rules[0].when.peer: must be a mapping (got "x")`,
				`line 10: policies[0].response.reveal.rules[0].fields.$.a: must be a string (got a mapping)`,
				`line 11: policies[0].response.reveal.rules[0].nmae: unknown key (known: name, when, fields)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("want Problems, got %v", err)
			}
			lines := strings.Split(ps.Report(), "\n")
			for _, w := range tc.want {
				found := false
				for _, l := range lines {
					found = found || strings.HasPrefix(l, w)
				}
				if !found {
					t.Errorf("no line starting %q in:\n%s", w, ps.Report())
				}
			}
		})
	}
}
