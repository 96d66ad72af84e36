package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// fullRecord writes one audit record with every attribute present (every string field of Who
// set, a key id, a version and an error), one batch record and one reveal record, and returns their attribute
// names.
func fullRecord(t *testing.T) map[string]bool {
	t.Helper()
	var who Who
	v := reflect.ValueOf(&who).Elem()
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.String && f.CanSet() {
			f.SetString("x-" + v.Type().Field(i).Name)
		}
	}
	var buf bytes.Buffer
	a := New(slog.New(slog.NewJSONHandler(&buf, nil)))
	a.Record(WithWho(context.Background(), who), OpRotate, "tenant-acme", 2, errors.New("boom"))
	a.RecordBatch(WithWho(context.Background(), who), OpRewrap, Batch{Items: 2, KeyIDs: []string{"tenant-acme"}, KeyIDCount: 1,
		Rewrapped: 1, Failed: 1}, errors.New("boom"))
	a.RecordReveal(WithWho(context.Background(), who), "people", "tenant-acme", []RevealField{{Field: "$.ssn", Rule: "support", Action: "mask:last4", N: 1}})
	keys := map[string]bool{}
	for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("audit record %q: %v", line, err)
		}
		for k := range rec {
			keys[k] = true
		}
	}
	return keys
}

// auditSection returns the lines of README.md's "## Audit log" section.
func auditSection(t *testing.T, readme []byte) []string {
	t.Helper()
	var lines []string
	in := false
	sc := bufio.NewScanner(bytes.NewReader(readme))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			in = line == "## Audit log"
			continue
		}
		if in {
			lines = append(lines, line)
		}
	}
	if len(lines) == 0 {
		t.Fatal(`README.md has no "## Audit log" section`)
	}
	return lines
}

var tableRow = regexp.MustCompile("^\\| `([a-z_]+)` \\|")

// TestREADMEAuditRecord keeps README.md's description of audit records and the package doc equal
// to what Record writes: the attribute table and the doc's list name exactly the attributes of a
// real record (besides slog's time, level, msg), the README's example records use only those and
// carry "msg":"audit" and "logger":"audit", and no other README text describes a record shape
// that does not exist (issue 15, defect 8: `"audit": true` and `peer`).
func TestREADMEAuditRecord(t *testing.T) {
	real := fullRecord(t)
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	section := auditSection(t, readme)

	documented := map[string]bool{"time": true, "level": true, "msg": true, "logger": true}
	var examples []string
	inJSON := false
	for _, line := range section {
		switch {
		case line == "```json":
			inJSON = true
		case line == "```":
			inJSON = false
		case inJSON && strings.TrimSpace(line) != "":
			examples = append(examples, line)
		default:
			if m := tableRow.FindStringSubmatch(line); m != nil {
				documented[m[1]] = true
			}
		}
	}
	if !maps.Equal(documented, real) {
		t.Errorf("README.md's audit table (plus time, level, msg, logger) names %v; a record has %v",
			slices.Sorted(maps.Keys(documented)), slices.Sorted(maps.Keys(real)))
	}
	prose := strings.Join(section, "\n")
	for _, want := range []string{"`\"msg\":\"audit\"`", "`\"logger\":\"audit\"`"} {
		if !strings.Contains(prose, want) {
			t.Errorf("README.md's audit section does not say %s", want)
		}
	}
	if len(examples) == 0 {
		t.Error("README.md's audit section has no example record")
	}
	for _, line := range examples {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("README.md example audit record is not JSON: %s", line)
			continue
		}
		if rec["msg"] != "audit" || rec["logger"] != "audit" {
			t.Errorf("README.md example lacks \"msg\":\"audit\" or \"logger\":\"audit\": %s", line)
		}
		for k := range rec {
			if !real[k] {
				t.Errorf("README.md example has %q, which no audit record has: %s", k, line)
			}
		}
	}
	// Elsewhere the README must point to the section, not describe records its own way.
	for _, stale := range []string{`"audit": true`, `"audit":true`} {
		if bytes.Contains(readme, []byte(stale)) {
			t.Errorf("README.md says audit records carry %s", stale)
		}
	}
	peer := regexp.MustCompile(`\bpeer\b`)
	for _, para := range strings.Split(string(readme), "\n\n") {
		if strings.Contains(para, "audit record") && peer.MatchString(para) {
			t.Errorf("README.md describes an audit record with a peer attribute (it is remote):\n%s", para)
		}
	}

	// The package doc's attribute list ("//\tname   description") names the same attributes.
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	inDoc := map[string]bool{"time": true, "level": true, "msg": true}
	for _, m := range regexp.MustCompile(`(?m)^//\t([a-z_]+) {2,}\S`).FindAllSubmatch(doc, -1) {
		inDoc[string(m[1])] = true
	}
	if !maps.Equal(inDoc, real) {
		t.Errorf("doc.go's attribute list (plus time, level, msg) names %v; a record has %v",
			slices.Sorted(maps.Keys(inDoc)), slices.Sorted(maps.Keys(real)))
	}
}
