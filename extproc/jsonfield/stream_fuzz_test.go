package jsonfield

import (
	"testing"
)

// FuzzStream is the differential test of the streaming rewrite: a document (or NDJSON stream)
// from the seeds, selectors ("-" marks a Remove field), and chunk sizes drawn from seed; the
// concatenated output of the stream must be RewriteChecked's (on each line, for NDJSON), with
// the same check and transform calls, and the stream must fail where RewriteChecked fails,
// with the same *SyntaxError, or with the callbacks' error when one is made to fail.
func FuzzStream(f *testing.F) {
	for _, doc := range fuzzGuardDocs {
		f.Add([]byte(doc), "", uint64(len(doc)), false, false, uint8(0))
	}
	for _, tc := range streamCases {
		f.Add([]byte(tc.doc), tc.sels, uint64(len(tc.doc)*7), tc.ndjson, true, uint8(0))
	}
	f.Add([]byte("{\"ssn\":1,\"a\":[{\"ssn\":2}]}\n\n{\"SSN\":3}\r\n"), "-$..ssn\n$.a", uint64(3), true, true, uint8(3))
	f.Add([]byte(`{"x":{"y":"1"},"z":["2"],"w":"\u00e9"}`), "$.x.y\n$.x\n$.z[0]", uint64(11), false, true, uint8(130))
	f.Fuzz(func(t *testing.T, doc []byte, selText string, seed uint64, ndjson, fold bool, fail uint8) {
		if len(doc) > 4096 || len(selText) > 256 {
			return
		}
		if selText == "" {
			selText = "$.a\n$..b\n$.c[*]\n$[1]\n$.d[0].e\n-$..ssn\n$['k y']"
		}
		p, err := NewPlan(streamFields(selText), Options{MaxDepth: 64, FoldCase: fold})
		if err != nil {
			t.Fatal(err)
		}
		opts := StreamOptions{NDJSON: ndjson, MaxValue: 1 << 20, MaxPending: 1 << 20}
		withCheck := fail&1 == 0
		failCheck, failValue := 0, 0
		if fail >= 128 {
			if withCheck {
				failCheck = int(fail&63) + 1
			} else {
				failValue = int(fail&63) + 1
			}
		}
		want := refStream(p, doc, ndjson, withCheck, failCheck, failValue)
		sizes := randomSizes(seed, len(doc))
		got := runStream(t, p, opts, doc, sizes, withCheck, failCheck, failValue)
		compareRuns(t, describe(doc, sizes), got, want)
	})
}
