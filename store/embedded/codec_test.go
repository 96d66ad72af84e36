package embedded

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/rkms/rkms/store"
	"github.com/rkms/rkms/store/storetest"
)

// TestGolden pins encoding version 1: each golden file decodes to the expected record and the
// record encodes to the golden bytes exactly. record-v1.json is a record written before version
// lifecycle existed (it must keep reading); record-v1-lifecycle.json has its fields.
func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		file string
		rec  *store.Record
	}{
		{"testdata/record-v1.json", storetest.GoldenRecord()},
		{"testdata/record-v1-lifecycle.json", storetest.GoldenLifecycleRecord()},
		{"testdata/record-v1-branch.json", storetest.GoldenBranchRecord()},
	} {
		t.Run(tc.file, func(t *testing.T) {
			golden, err := os.ReadFile(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			testGolden(t, bytes.TrimSuffix(golden, []byte("\n")), tc.rec)
		})
	}
}

func testGolden(t *testing.T, golden []byte, rec *store.Record) {
	enc, err := encode(rec)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc, golden) {
		t.Fatalf("encoding changed:\n got %s\nwant %s", enc, golden)
	}
	dec, err := decode(golden)
	if err != nil {
		t.Fatal(err)
	}
	again, err := encode(dec)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, golden) {
		t.Fatalf("decode/encode round trip changed the bytes:\n got %s\nwant %s", again, golden)
	}
}

// TestRevisionRange checks that the encoding holds any positive int64 revision (Create starts
// anywhere below 2^62) and round-trips it, and rejects everything else.
func TestRevisionRange(t *testing.T) {
	tests := []struct {
		rev string
		ok  bool
	}{
		{"1", true},
		{"4611686018427387903", true}, // 2^62-1, the largest start
		{"9223372036854775807", true}, // 2^63-1, store.MaxRevision
		{"9223372036854775808", false},
		{"0", false},
		{"-3", false},
		{"1.5", false},
		{`"7"`, false},
	}
	for _, tt := range tests {
		t.Run(tt.rev, func(t *testing.T) {
			data := []byte(`{"format":1,"id":"k","revision":` + tt.rev + `,"current":0,"versions":[]}`)
			rec, err := decode(data)
			if !tt.ok {
				if !errors.Is(err, store.ErrCorrupt) {
					t.Fatalf("decode = %v, want ErrCorrupt", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			again, err := encode(rec)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, data) {
				t.Fatalf("round trip changed the bytes:\n got %s\nwant %s", again, data)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	golden, err := os.ReadFile("testdata/record-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	g := string(bytes.TrimSpace(golden))
	tests := []struct {
		name, data string
	}{
		{"empty", ""},
		{"not-json", "hello"},
		{"array", "[]"},
		{"truncated", g[:len(g)/2]},
		{"trailing", g + "{}"},
		{"format-2", strings.Replace(g, `"format":1`, `"format":2`, 1)},
		{"format-missing", strings.Replace(g, `"format":1,`, ``, 1)},
		{"unknown-field", strings.Replace(g, `"format":1,`, `"format":1,"extra":true,`, 1)},
		{"empty-id", strings.Replace(g, `"id":"payments/card"`, `"id":""`, 1)},
		{"revision-0", strings.Replace(g, `"revision":3`, `"revision":0`, 1)},
		{"current-negative", strings.Replace(g, `"current":2`, `"current":-2`, 1)},
		{"current-overflow", strings.Replace(g, `"current":2`, `"current":4294967296`, 1)},
		{"bad-time", strings.Replace(g, `2025-06-01T00:00:00Z`, `yesterday`, 1)},
		{"bad-base64", strings.Replace(g, `"blob":"qg=="`, `"blob":"%%%"`, 1)},
		{"min-decrypt-above-current", strings.Replace(g, `"current":2,`, `"current":2,"min_decrypt_version":3,`, 1)},
		{"bad-retired", strings.Replace(g, `"missing":["eu-west-1"]`, `"missing":["eu-west-1"],"retired":"soon"`, 1)},
		{"zero-retired", strings.Replace(g, `"missing":["eu-west-1"]`, `"missing":["eu-west-1"],"retired":"0001-01-01T00:00:00Z"`, 1)},
		{"destroyed-with-copies", strings.Replace(g, `"missing":["eu-west-1"]`, `"missing":["eu-west-1"],"destroyed":"2025-06-02T00:00:00Z"`, 1)},
		{"negative-seals", strings.Replace(g, `"missing":["eu-west-1"]`, `"missing":["eu-west-1"],"seals":-1`, 1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.data == g {
				t.Fatal("test case did not change the golden record")
			}
			if _, err := decode([]byte(tc.data)); !errors.Is(err, store.ErrCorrupt) {
				t.Fatalf("decode = %v, want ErrCorrupt", err)
			}
		})
	}
}

// FuzzDecode checks that decode never panics, and that whatever it accepts re-encodes to bytes
// that decode to the same encoding again (the encoding is canonical after one round).
func FuzzDecode(f *testing.F) {
	golden, err := os.ReadFile("testdata/record-v1.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(golden)
	lifecycle, err := os.ReadFile("testdata/record-v1-lifecycle.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(lifecycle)
	branch, err := os.ReadFile("testdata/record-v1-branch.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(branch)
	f.Add([]byte(`{"format":1,"id":"k","revision":2,"current":1,"versions":[{"number":1,"created":"2025-01-01T00:00:00Z","wrapped":{"r":{"key_id":"k","blob":"AQ=="}},"branch":{"key_id":"_rkms.branch.0","version":1,"blob":"AQ=="}}]}`))
	f.Add([]byte(`{"format":1,"id":"k","revision":2,"current":1,"versions":[{"number":1,"created":"2025-01-01T00:00:00Z","wrapped":{},"retired":"2025-01-02T00:00:00Z","destroyed":"2025-01-09T00:00:00Z","seals":18446744073709551615}],"min_decrypt_version":1}`))
	f.Add([]byte(`{"format":1,"id":"k","revision":1,"current":0,"versions":[]}`))
	f.Add([]byte(`{"format":1,"id":"k","revision":9223372036854775807,"current":0,"versions":[]}`))
	f.Add([]byte(`{"format":1,"id":"k","revision":1,"current":0,"versions":null}`))
	f.Add([]byte(`{"format":1,"id":"k","revision":9,"current":1,"versions":[{"number":1,"created":"0001-01-01T00:00:00Z","wrapped":{}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := decode(data)
		if err != nil {
			if !errors.Is(err, store.ErrCorrupt) {
				t.Fatalf("decode error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		enc, err := encode(rec)
		if err != nil {
			t.Fatalf("encode of a decoded record: %v", err)
		}
		rec2, err := decode(enc)
		if err != nil {
			t.Fatalf("decode of a re-encoded record: %v", err)
		}
		enc2, err := encode(rec2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable:\n%s\n%s", enc, enc2)
		}
	})
}
