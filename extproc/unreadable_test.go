package extproc

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	testenv "github.com/rkms/rkms/internal/testing/env"
)

// TestUnreadableRecordInList: one record of a list response that cannot be opened fails the
// whole response closed (no partial list), with a message that reads as a data problem, the
// same for every cause (no oracle), while the log names the field's path and the record's index.
func TestUnreadableRecordInList(t *testing.T) {
	// The exact text, not authFailed: this is the message users read (issue 15, defect 9).
	const wantMsg = "a stored field could not be decrypted (ciphertext authentication failed)"
	for _, tc := range []struct {
		name       string
		spoil      func(t *testing.T, e *testEnv, rec []byte, ssn, email string) []byte
		tenant     string
		wantField  string
		wantRecord float64 // -1: no record attribute
	}{
		{"tampered email in the second record", func(t *testing.T, e *testEnv, rec []byte, ssn, email string) []byte {
			i := len(email) / 2
			return bytes.Replace(rec, []byte(email), []byte(email[:i]+string("AB"[boolInt(email[i] == 'A')])+email[i+1:]), 1)
		}, "t1", "$.items[1].contact.email", 1},
		{"value moved to another label", func(t *testing.T, e *testEnv, rec []byte, ssn, email string) []byte {
			return bytes.Replace(rec, []byte(email), []byte(ssn), 1)
		}, "t1", "$.items[1].contact.email", 1},
		{"another tenant's list", nil, "t2", "$.items[0].ssn", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf testenv.LockedBuffer
			e := newTestEnv(t, Options{Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
			for range 3 {
				e.mustDo(jsonReq("POST", "/patients", "t1", patient), 201)
			}
			if tc.spoil != nil {
				rec, _ := e.app.Record("patients", "2")
				ssn, _ := field(t, rec, "ssn").(string)
				email, _ := field(t, rec, "contact.email").(string)
				e.app.Put("patients", "2", tc.spoil(t, e, rec, ssn, email))
			}
			buf.Drain()
			x := e.do(envoyCfg{}, jsonReq("GET", "/patients", tc.tenant, ""))
			if x.client.status != 502 {
				t.Fatalf("status %d, want 502: %s", x.client.status, x.client.body)
			}
			if msg := errorMessage(t, x); msg != wantMsg {
				t.Errorf("error %q, want %q", msg, wantMsg)
			}
			for _, s := range patientSecrets {
				if bytes.Contains(x.client.body, []byte(s)) {
					t.Errorf("reply leaks %q", s)
				}
			}
			logged := buf.Drain()
			if bytes.Contains(logged, []byte("rkms:")) {
				t.Errorf("the log holds a ciphertext: %s", logged)
			}
			var refused map[string]any
			for _, line := range bytes.Split(bytes.TrimSpace(logged), []byte("\n")) {
				var r map[string]any
				if err := json.Unmarshal(line, &r); err != nil {
					t.Fatalf("log line is not JSON: %s", line)
				}
				if r["msg"] == "request refused" {
					refused = r
				}
			}
			if refused == nil {
				t.Fatalf("no refusal logged: %s", logged)
			}
			if refused["field"] != tc.wantField || refused["record"] != tc.wantRecord {
				t.Errorf("logged field %v record %v, want %s %v: %v", refused["field"], refused["record"], tc.wantField, tc.wantRecord, refused)
			}
		})
	}
}
