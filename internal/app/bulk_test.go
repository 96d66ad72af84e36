package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rkms/rkms/internal/testing/bulkgen"
)

// bulkCanary is a tagged value of the bulk tests' records: it must never reach stderr, a reject
// file or a summary.
const bulkCanary = "CANARY-987-65-4321"

// bulkConfig writes a configuration with an on-disk keyring (as sealConfig) and bulkgen's
// policy "bulk" (key id tenant-{json:$.tenant}, four tagged members).
func bulkConfig(t *testing.T) (cfg, dir string) {
	t.Helper()
	dir = t.TempDir()
	return writeConfig(t, dir, fmt.Sprintf("data_dir: %[1]s/data\nadmin: {token_file: %[1]s/data/admin.token}\nstore: {type: embedded, embedded: {path: %[1]s/data/keys.db}}\n%[2]s",
		dir, bulkgen.Policy)), dir
}

// genRecords returns n bulkgen records (with their newlines).
func genRecords(n int) []string {
	r := rand.New(rand.NewPCG(7, 8))
	recs := make([]string, n)
	for i := range recs {
		recs[i] = string(bulkgen.AppendRecord(nil, r, i))
	}
	return recs
}

// canaryRecord is a record whose ssn is the canary.
func canaryRecord(tenant string) string {
	return `{"id":99,"tenant":"` + tenant + `","ssn":"` + bulkCanary + `","email":"c@example.com","dob":"1990-01-01","card":{"number":"4111"}}`
}

// TestBulkNDJSON runs rkms seal over NDJSON inputs with blank lines, CRLF, lines that are not
// JSON or too long, records that fail the policy; with and without --reject and --from-line.
// It checks the output lines, the exit status, the reject file's content, the summary counts,
// and that the canary (a tagged value of a failing record) is in no output but stdout.
func TestBulkNDJSON(t *testing.T) {
	cfg, dir := bulkConfig(t)
	good := canaryRecord("t1")
	sealed := func(t *testing.T) string { // a record already sealed: the tripwire refuses it
		code, out, stderr := cli(t, good+"\n", "seal", "--config", cfg, "--policy", "bulk", "--format", "ndjson")
		if code != 0 {
			t.Fatalf("seal: %d %s", code, stderr)
		}
		return strings.TrimSpace(out)
	}(t)
	huge := `{"tenant":"t1","ssn":"` + bulkCanary + strings.Repeat("x", 2000) + `"}`
	tests := []struct {
		name     string
		in       string
		flags    []string
		code     int
		outIDs   []string // the ids of the output records, in order ("" for a record without id)
		rejects  []string // reject lines, as {"line":N,"error":{"kind":K}} (message checked apart)
		stderr   string   // in stderr
		sum      bulkSummary
		fromLine int64
	}{
		{name: "records", in: canaryRecord("t1") + "\n" + canaryRecord("t2") + "\n", outIDs: []string{"99", "99"},
			sum: bulkSummary{Records: 2, Written: 2, Fields: 8}},
		{name: "blank lines and CRLF, last line without newline", in: "\n" + canaryRecord("t1") + "\r\n  \r\n\t\n" + canaryRecord("t3"),
			outIDs: []string{"99", "99"}, sum: bulkSummary{Records: 2, Written: 2, Fields: 8, BlankLines: 3}},
		{name: "not JSON, rejected", in: good + "\n" + `{"tenant":"t1","ssn":"` + bulkCanary + `",` + "\n" + good + "\n",
			flags: []string{"--reject", "REJECT"}, code: 1, outIDs: []string{"99", "99"},
			rejects: []string{`{"line":2,"error":{"kind":"not_json"}}`}, sum: bulkSummary{Records: 3, Written: 2, Failed: 1, Fields: 8, FirstFailure: 2}},
		{name: "not JSON stops the run without --reject", in: good + "\n" + "ssn " + bulkCanary + "\n" + good + "\n",
			code: 1, outIDs: []string{"99"}, stderr: "line 2: not_json", sum: bulkSummary{Records: 2, Written: 1, Failed: 1, Fields: 4, FirstFailure: 2, Stopped: 2, ResumeFrom: 2}},
		{name: "line over --max-record", in: good + "\n" + huge + "\n" + good + "\n",
			flags: []string{"--reject", "REJECT", "--max-record", "1000"}, code: 1, outIDs: []string{"99", "99"},
			rejects: []string{`{"line":2,"error":{"kind":"too_large"}}`}, sum: bulkSummary{Records: 3, Written: 2, Failed: 1, Fields: 8, FirstFailure: 2}},
		{name: "no tenant, already sealed, invalid key id", in: `{"ssn":"` + bulkCanary + `"}` + "\n" + sealed + "\n" + canaryRecord("bad tenant") + "\n" + good + "\n",
			flags: []string{"--reject", "REJECT"}, code: 1, outIDs: []string{"99"},
			rejects: []string{`{"line":1,"error":{"kind":"key_id"}}`, `{"line":2,"error":{"kind":"bad_input"}}`, `{"line":3,"error":{"kind":"key_id"}}`},
			sum:     bulkSummary{Records: 4, Written: 1, Failed: 3, Fields: 4, FirstFailure: 1}},
		{name: "--from-line", in: canaryRecord("t1") + "\nnot json\n" + `{"id":3,"tenant":"t1","ssn":"x"}` + "\n" + `{"id":4,"tenant":"t2","ssn":"y"}` + "\n",
			flags: []string{"--from-line", "3"}, outIDs: []string{"3", "4"}, sum: bulkSummary{Records: 2, Written: 2, Fields: 2, SkippedLines: 2}},
		{name: "--from-line past the end", in: good + "\n", flags: []string{"--from-line", "5"}, sum: bulkSummary{SkippedLines: 1}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reject := filepath.Join(dir, fmt.Sprintf("reject-%d.ndjson", i))
			summary := filepath.Join(dir, fmt.Sprintf("summary-%d.json", i))
			args := []string{"seal", "--config", cfg, "--policy", "bulk", "--format", "ndjson", "-j", "3", "--summary-json", summary}
			for _, f := range tc.flags {
				args = append(args, strings.ReplaceAll(f, "REJECT", reject))
			}
			code, stdout, stderr := cli(t, tc.in, args...)
			if code != tc.code || !strings.Contains(stderr, tc.stderr) {
				t.Fatalf("exit %d, want %d; stderr %q, want %q", code, tc.code, stderr, tc.stderr)
			}
			var ids []string
			for _, line := range strings.Split(strings.TrimSuffix(stdout, "\n"), "\n") {
				if line == "" {
					continue
				}
				if strings.Contains(line, bulkCanary) || strings.Contains(line, "\r") {
					t.Errorf("output line holds the plaintext or a CR: %q", line)
				}
				var rec struct{ ID json.Number }
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Fatalf("output line is not JSON: %v: %q", err, line)
				}
				ids = append(ids, rec.ID.String())
			}
			if strings.Join(ids, ",") != strings.Join(tc.outIDs, ",") {
				t.Errorf("output ids %v, want %v", ids, tc.outIDs)
			}
			rej, _ := os.ReadFile(reject)
			var gotRejects []string
			for _, line := range strings.Split(strings.TrimSpace(string(rej)), "\n") {
				if line == "" {
					continue
				}
				var r struct {
					Line  int64 `json:"line"`
					Error struct {
						Kind, Message string
					} `json:"error"`
				}
				if err := json.Unmarshal([]byte(line), &r); err != nil || r.Error.Message == "" {
					t.Fatalf("reject line %q: %v (want line, kind, message)", line, err)
				}
				gotRejects = append(gotRejects, fmt.Sprintf(`{"line":%d,"error":{"kind":"%s"}}`, r.Line, r.Error.Kind))
			}
			if strings.Join(gotRejects, "\n") != strings.Join(tc.rejects, "\n") {
				t.Errorf("reject file:\n%s\nwant:\n%s", strings.Join(gotRejects, "\n"), strings.Join(tc.rejects, "\n"))
			}
			sj, err := os.ReadFile(summary)
			if err != nil {
				t.Fatal(err)
			}
			var sum bulkSummary
			if err := json.Unmarshal(sj, &sum); err != nil {
				t.Fatal(err)
			}
			got := bulkSummary{Records: sum.Records, Written: sum.Written, Failed: sum.Failed, Fields: sum.Fields, SkippedLines: sum.SkippedLines,
				BlankLines: sum.BlankLines, FirstFailure: sum.FirstFailure, Stopped: sum.Stopped, ResumeFrom: sum.ResumeFrom}
			if fmt.Sprint(got) != fmt.Sprint(tc.sum) {
				t.Errorf("summary %+v, want %+v", got, tc.sum)
			}
			var byKind int64
			for _, n := range sum.Errors {
				byKind += n
			}
			if byKind != sum.Failed || sum.FieldsVerb != "sealed" || sum.BytesIn == 0 && tc.in != "" {
				t.Errorf("summary errors by kind %v for %d failed, verb %q, bytes in %d", sum.Errors, sum.Failed, sum.FieldsVerb, sum.BytesIn)
			}
			for what, text := range map[string]string{"stderr": stderr, "reject file": string(rej), "summary": string(sj)} {
				if strings.Contains(text, bulkCanary) {
					t.Errorf("%s holds the plaintext canary: %s", what, text)
				}
			}
			if !strings.Contains(stderr, "rkms seal: ") || !strings.Contains(stderr, "fields sealed") {
				t.Errorf("no summary on stderr: %q", stderr)
			}
		})
	}
}

// TestBulkRoundTrip: generated records sealed with several workers come out in input order, open
// back to the exact input, and -j 1 gives the same plaintext; one JSON document goes through
// --in/--out the same way; the default format follows the file extension.
func TestBulkRoundTrip(t *testing.T) {
	cfg, dir := bulkConfig(t)
	recs := genRecords(5000)
	in := filepath.Join(dir, "export.jsonl") // .jsonl: NDJSON without --format
	if err := os.WriteFile(in, []byte(strings.Join(recs, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	sealedPath := filepath.Join(dir, "sealed.ndjson")
	code, stdout, stderr := cli(t, "", "seal", "--config", cfg, "--policy", "bulk", "--in", in, "--out", sealedPath, "-j", "8")
	if code != 0 || stdout != "" {
		t.Fatalf("seal: %d %q %s", code, stdout, stderr)
	}
	sealed, _ := os.ReadFile(sealedPath)
	lines := strings.Split(strings.TrimSuffix(string(sealed), "\n"), "\n")
	if len(lines) != len(recs) {
		t.Fatalf("%d sealed lines for %d records", len(lines), len(recs))
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, fmt.Sprintf(`{"id":%d,`, i+1)) || strings.Count(l, `"rkms:`) != bulkgen.TaggedPerRecord {
			t.Fatalf("sealed line %d out of order or not sealed: %s", i+1, l)
		}
	}
	if st, err := os.Stat(sealedPath); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("--out mode: %v %v", st.Mode(), err)
	}
	for _, j := range []string{"1", "8"} {
		code, opened, stderr := cli(t, string(sealed), "open", "--config", cfg, "--policy", "bulk", "--format", "ndjson", "-j", j)
		if code != 0 || opened != strings.Join(recs, "") {
			t.Fatalf("open -j %s: exit %d, output differs from the input: %s", j, code, stderr)
		}
	}

	doc := filepath.Join(dir, "doc.json")
	if err := os.WriteFile(doc, []byte(strings.TrimSpace(recs[0])), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "doc.sealed.json")
	if code, _, stderr := cli(t, "", "seal", "--config", cfg, "--policy", "bulk", "--in", doc, "--out", out); code != 0 {
		t.Fatalf("seal --in doc.json: %d %s", code, stderr)
	}
	sealedDoc, _ := os.ReadFile(out)
	if n := strings.Count(string(sealedDoc), `"rkms:`); n != 4 {
		t.Fatalf("sealed document has %d ciphertexts: %s", n, sealedDoc)
	}
	if code, opened, stderr := cli(t, string(sealedDoc), "open", "--config", cfg, "--policy", "bulk"); code != 0 || opened != strings.TrimSpace(recs[0]) {
		t.Fatalf("open the document: %d %s %s", code, opened, stderr)
	}
}

// TestBulkUsage: bad flag combinations exit 2 before touching keys or files.
func TestBulkUsage(t *testing.T) {
	cfg, _ := bulkConfig(t)
	base := []string{"seal", "--config", cfg, "--policy", "bulk"}
	tests := []struct {
		flags []string
		want  string
	}{
		{[]string{"--format", "xml"}, "--format"},
		{[]string{"--format", "ndjson", "-j", "0"}, "-j 0"},
		{[]string{"--format", "ndjson", "-j", "100000"}, "-j 100000"},
		{[]string{"--format", "ndjson", "--max-record", "0"}, "--max-record"},
		{[]string{"--format", "ndjson", "--max-record", "1000000000"}, "--max-record"},
		{[]string{"--format", "ndjson", "--from-line", "0"}, "--from-line"},
		{[]string{"--from-line", "3"}, "for --format ndjson"},
		{[]string{"--reject", "r.ndjson"}, "for --format ndjson"},
		{[]string{"--in", "a.ndjson", "--out", "a.ndjson"}, "same file"},
	}
	for _, tc := range tests {
		code, stdout, stderr := cli(t, "", append(base, tc.flags...)...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want 2 and %q", tc.flags, code, stderr, tc.want)
		}
	}
	if code, _, stderr := cli(t, "x", "seal", "--config", cfg, "--value", "--key-id", "k", "--in", "f"); code != 2 || !strings.Contains(stderr, "--value reads standard input") {
		t.Errorf("--value --in: %d %s", code, stderr)
	}
}

// TestBulkOpenRefusals: records that do not open are counted by kind (a tampered ciphertext is
// "auth", a record moved to another tenant too), and the plaintext of the others never shows.
func TestBulkOpenRefusals(t *testing.T) {
	cfg, dir := bulkConfig(t)
	code, sealed, stderr := cli(t, canaryRecord("t1")+"\n"+canaryRecord("t2")+"\n", "seal", "--config", cfg, "--policy", "bulk", "--format", "ndjson")
	if code != 0 {
		t.Fatal(stderr)
	}
	lines := strings.Split(strings.TrimSpace(sealed), "\n")
	moved := strings.Replace(lines[1], `"tenant":"t2"`, `"tenant":"t1"`, 1)
	in := string(tamper(t, []byte(lines[0]))) + "\n" + moved + "\n" + lines[0] + "\n"
	reject := filepath.Join(dir, "reject.ndjson")
	code, out, stderr := cli(t, in, "open", "--config", cfg, "--policy", "bulk", "--format", "ndjson", "--reject", reject)
	if code != 1 || strings.Count(out, bulkCanary) != 1 {
		t.Fatalf("open: exit %d, %q %s", code, out, stderr)
	}
	rej, _ := os.ReadFile(reject)
	if n := bytes.Count(rej, []byte(`"kind":"auth"`)); n != 2 || !strings.Contains(stderr, "auth 2") || strings.Contains(stderr+string(rej), bulkCanary) {
		t.Fatalf("rejects %s, stderr %s", rej, stderr)
	}
}
