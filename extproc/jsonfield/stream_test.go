package jsonfield

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// streamCases are small documents (and NDJSON streams) with their selectors (one a line; "-"
// marks a Remove field): each is streamed split at every offset, and at every pair of offsets
// when short, and must agree with RewriteChecked.
var streamCases = []struct {
	name   string
	doc    string
	sels   string
	ndjson bool
}{
	{"member", `{"a":"x","b":1}`, "$.a", false},
	{"nested", `{"a":{"b":[1,{"c":"d"}]},"c":"e"}`, "$.a.b[1].c\n$..c", false},
	{"outermost", ` {"a" : {"b":1} , "b" : 2 } `, "$.a\n$..b", false},
	{"wildcard", `[{"s":"1"},{"s":"2"},3,[{"s":4}]]`, "$[*].s\n$[3][0]", false},
	{"index", `[[1,2],[3,[4,5]]]`, "$[1][1][0]\n$[0]", false},
	{"root", ` "whole" `, "$", false},
	{"root number", `-12.5e+3`, "$", false},
	{"root literal", `true`, "$", false},
	{"escapes", `{"s\u0073n":"\"q\\\u00e9\ud83d\ude00","x":"\/"}`, "$.ssn", false},
	{"utf8", `{"é":"日本語","😀":"ok","k":"€"}`, "$['é']\n$['😀']", false},
	{"numbers", `[0,-0,1.5,2e10,3E-2,-4.0e+1,10]`, "$[2]\n$[6]", false},
	{"literals", `{"t":true,"f":false,"n":null}`, "$.f", false},
	{"empty", `{"a":{},"b":[],"c":""}`, "$.a\n$.b\n$.c", false},
	{"duplicates", `{"a":1,"a":2,"A":3}`, "$.a", false},
	{"remove middle", `{"a":1,"ssn":"x","b":2}`, "-$.ssn", false},
	{"remove first", `{ "ssn" : "x" , "b" : 2 }`, "-$.ssn", false},
	{"remove last", `{"a":1 , "ssn":{"x":[1]} }`, "-$.ssn", false},
	{"remove all", `{"ssn":1, "ssn" :2,"ssn":3 }`, "-$.ssn", false},
	{"remove alternate", `{"ssn":1,"a":2,"ssn":3,"b":4,"ssn":5}`, "-$.ssn\n$.a", false},
	{"remove deep", `[{"x":{"ssn":1,"k":2}},{"ssn":3}]`, "-$..ssn", false},
	{"whitespace", " \t\r\n[ 1 , { \"a\" : \"b\" } ]\r\n", "$[1].a", false},
	{"ndjson", "{\"a\":1}\n{\"a\":\"x\",\"b\":2}\n[1]\n", "$.a", true},
	{"ndjson crlf blank", "{\"a\":1}\r\n\r\n \t\n{\"a\":2}\r\n", "$.a", true},
	{"ndjson no final newline", "{\"a\":1}\n{\"a\":2}", "$.a\n-$.b", true},
	{"ndjson remove", "{\"b\":0,\"a\":1}\n{\"a\":2,\"b\":3}\n", "-$.b", true},
	{"ndjson root", "1\n\"two\"\nnull\n", "$", true},
	// Errors: the stream must fail where Rewrite fails, with the same error.
	{"bad trailing comma", `{"a":1,}`, "$.a", false},
	{"bad two values", `{"a":1} {"a":2}`, "$.a", false},
	{"bad utf8", "{\"a\":\"\xe2\x82\"}", "$.b", false},
	{"bad utf8 selected", "{\"a\":\"\xed\xa0\x80\"}", "$.a", false},
	{"bad escape", `{"a":"\x"}`, "$.a", false},
	{"bad unicode escape", `["\u12G4"]`, "$[0]", false},
	{"bad control", "[\"a\tb\"]", "$[0]", false},
	{"bad number", `[1.]`, "$[0]", false},
	{"bad leading zero", `{"a":01}`, "$.a", false},
	{"bad literal", `{"a":tru}`, "$.a", false},
	{"bad colon", `{"a" 1}`, "$.a", false},
	{"bad key", `{1:2}`, "$.a", false},
	{"bad close", `[1}`, "$[0]", false},
	{"cut string", `{"a":"abc`, "$.a", false},
	{"cut escape", `{"a":"ab\u00`, "$.a", false},
	{"cut utf8", "{\"a\":\"ab\xe2\x82", "$.a", false},
	{"cut number", `[1e`, "$[0]", false},
	{"cut after number", `[12`, "$[0]", false},
	{"cut literal", `[nul`, "$[0]", false},
	{"cut key", `{"a":1,`, "$.a", false},
	{"cut colon", `{"a"`, "$.a", false},
	{"empty doc", ``, "$", false},
	{"blank doc", " \r\n", "$", false},
	{"ndjson bad line", "{\"a\":1}\n{\"a\":\n{\"a\":3}\n", "$.a", true},
	{"ndjson cut string", "{\"a\":\"x\n\"}\n", "$.a", true},
	{"ndjson cut escape", "[\"x\\\n\"]\n", "$[0]", true},
	{"ndjson trailing", "{\"a\":1} 2\n", "$.a", true},
	{"ndjson cut last", "{\"a\":1}\n{\"a\"", "$.a", true},
}

func TestStreamEverySplit(t *testing.T) {
	for _, tc := range streamCases {
		t.Run(tc.name, func(t *testing.T) {
			doc := []byte(tc.doc)
			for _, fold := range []bool{false, true} {
				p, err := NewPlan(streamFields(tc.sels), Options{FoldCase: fold})
				if err != nil {
					t.Fatal(err)
				}
				opts := StreamOptions{NDJSON: tc.ndjson}
				for _, withCheck := range []bool{false, true} {
					want := refStream(p, doc, tc.ndjson, withCheck, 0, 0)
					if strings.HasPrefix(tc.name, "bad") || strings.HasPrefix(tc.name, "cut") || strings.HasSuffix(tc.name, "doc") {
						if want.err == nil {
							t.Fatal("the reference accepts a case meant to be invalid")
						}
					}
					compareRuns(t, describe(doc, nil), runStream(t, p, opts, doc, nil, withCheck, 0, 0), want)
					compareRuns(t, describe(doc, []int{1}), runStream(t, p, opts, doc, []int{1}, withCheck, 0, 0), want)
					for i := 0; i <= len(doc); i++ {
						sizes := []int{i, len(doc)}
						compareRuns(t, describe(doc, sizes), runStream(t, p, opts, doc, sizes, withCheck, 0, 0), want)
						if len(doc) > 24 {
							continue
						}
						for j := 1; i+j <= len(doc); j++ {
							sizes := []int{i, j, len(doc)}
							compareRuns(t, describe(doc, sizes), runStream(t, p, opts, doc, sizes, withCheck, 0, 0), want)
						}
					}
				}
			}
		})
	}
}

func TestStreamCallbackErrors(t *testing.T) {
	for _, tc := range streamCases {
		doc := []byte(tc.doc)
		p, err := NewPlan(streamFields(tc.sels), Options{})
		if err != nil {
			t.Fatal(err)
		}
		full := refStream(p, doc, tc.ndjson, true, 0, 0)
		if full.err != nil {
			continue
		}
		for k := 1; k <= len(full.checks); k++ {
			want := refStream(p, doc, tc.ndjson, true, k, 0)
			compareRuns(t, tc.name+" check fails", runStream(t, p, StreamOptions{NDJSON: tc.ndjson}, doc, []int{3}, true, k, 0), want)
		}
		for k := 1; k <= len(full.values); k++ {
			want := refStream(p, doc, tc.ndjson, false, 0, k)
			got := runStream(t, p, StreamOptions{NDJSON: tc.ndjson}, doc, []int{2}, false, 0, k)
			compareRuns(t, tc.name+" transform fails", got, want)
			var ve *ValueError
			if !errors.As(got.err, &ve) || ve.Op != "transform" {
				t.Fatalf("%s: transform error %v is not a *ValueError", tc.name, got.err)
			}
		}
	}
}

// TestStreamNDJSONErrorNamesLine checks the error of a bad line: its number, in the message
// too, and the offset counted from the start of the stream.
func TestStreamNDJSONErrorNamesLine(t *testing.T) {
	p, err := NewPlan(fields("$.a"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	doc := "{\"a\":1}\n\n{\"a\":2}\r\n{\"a\":3,}\n{\"a\":4}\n"
	s := p.NewStream(StreamOptions{NDJSON: true}, nil, identity)
	out, err := s.Write(nil, []byte(doc))
	var se *SyntaxError
	if !errors.As(err, &se) || se.Line != 4 || se.Offset != strings.Index(doc, ",}")+1 || out != nil {
		t.Fatalf("Write = %q, %v; want a syntax error on line 4", out, err)
	}
	if want := "invalid json on line 4 at offset 25: expected string for object key"; err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
}

// TestStreamForwardsEarly checks that unselected bytes leave as soon as they are known to be
// unselected, and that a selected value never does.
func TestStreamForwardsEarly(t *testing.T) {
	p, err := NewPlan(append(fields("$.ssn"), Field{Selector: MustParseSelector("$.drop"), Remove: true}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		chunks []string
		outs   []string // output of each Write, then of Close
	}{
		{[]string{`{"name":"ab`, `cd","ssn":"12`, `34","n":5`, `6}`}, []string{`{"name":"ab`, `cd","ssn":`, `"<\"1234\">","n":5`, `6}`, ``}},
		// A member name is held until it is known: "ss" could be "ssn".
		{[]string{`{"ss`, `x":1,"ss`, `n":"v"}`}, []string{`{`, `"ssx":1`, `,"ssn":"<\"v\">"}`, ``}},
		// The comma before a member is held until the member is known to stay.
		{[]string{`{"a":1,`, `"drop":2,`, `"b":3}`}, []string{`{"a":1`, ``, `,"b":3}`, ``}},
		{[]string{`{"a":1`, `,"dr`, `op":2}`}, []string{`{"a":1`, ``, `}`, ``}},
		// A number at the end of the input is selected only when Close says it ends there.
		{[]string{`12`}, []string{``, `"<12>"`}},
	} {
		sp := p
		if tc.chunks[0] == `12` {
			sp, _ = NewPlan(fields("$"), Options{})
		}
		s := sp.NewStream(StreamOptions{}, nil, wrap)
		for k, c := range tc.chunks {
			out, err := s.Write(nil, []byte(c))
			if err != nil || string(out) != tc.outs[k] {
				t.Fatalf("%q: Write %d = %q, %v; want %q", tc.chunks, k, out, err, tc.outs[k])
			}
		}
		out, err := s.Close(nil)
		if err != nil || string(out) != tc.outs[len(tc.chunks)] {
			t.Fatalf("%q: Close = %q, %v", tc.chunks, out, err)
		}
	}
}

// TestStreamHeldBounded streams large documents whose unselected strings are far larger than
// the limits, in chunks of several sizes: Held never exceeds MaxValue+MaxPending (runStream
// checks it after every Write), and the output is Rewrite's.
func TestStreamHeldBounded(t *testing.T) {
	big := strings.Repeat("x", 300<<10) + `\n\u00e9` + strings.Repeat("é", 100<<10)
	doc := []byte(`{"blob":"` + big + `","ssn":"123-45-6789","list":["` + big + `",{"ssn":"` + strings.Repeat("9", 1000) +
		`"}],"other":{"` + big + `":["` + big + `"]},"tail":` + strings.Repeat("1", 200<<10) + `}`)
	p, err := NewPlan(fields("$.ssn", "$.list[*].ssn"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	opts := StreamOptions{MaxValue: 4 << 10, MaxPending: 1 << 10}
	want := refStream(p, doc, false, false, 0, 0)
	if want.err != nil {
		t.Fatal(want.err)
	}
	for _, sizes := range [][]int{{1 << 10}, {65536}, {7, 4093, 100000}} {
		compareRuns(t, "big document", runStream(t, p, opts, doc, sizes, false, 0, 0), want)
	}
	// A selected value over MaxValue, a pending member name over MaxPending (only names that a
	// selector might match are held) and, with a check, a string over MaxPending are refused.
	for _, tc := range []struct {
		doc   string
		check bool
		what  string
	}{
		{`{"ssn":"` + strings.Repeat("1", 5<<10) + `"}`, false, "selected value"},
		{`{"` + strings.Repeat("k", 2<<10) + `":1}`, false, "pending token"},
		{`{"a":["` + strings.Repeat("v", 2<<10) + `"]}`, true, "pending token"},
	} {
		var check func(*Outside) error
		if tc.check {
			check = func(*Outside) error { return nil }
		}
		s := p.NewStream(opts, check, identity)
		_, err := s.Write(nil, []byte(tc.doc))
		var le *LimitError
		if !errors.As(err, &le) || !errors.Is(err, ErrTooLarge) || le.What != tc.what {
			t.Fatalf("%.20q: %v; want a %s over the limit", tc.doc, err, tc.what)
		}
	}
	// Without a check, an unselected name inside an unmatched value is not held at all.
	s := p.NewStream(opts, nil, identity)
	out, err := s.Write(nil, []byte(`[{"`+strings.Repeat("k", 2<<10)+`":1}]`))
	if out, err = s.Close(out); err != nil || !bytes.HasSuffix(out, []byte(`":1}]`)) {
		t.Fatalf("long name in an unmatched value: %v", err)
	}
}

// TestStreamDepth checks the nesting limit in every path of the stream: in containers a
// selector looks into, in containers skipped whole, and in selected values, whole or cut.
func TestStreamDepth(t *testing.T) {
	const limit = 5
	for _, sels := range []string{"$..a", "$.x", "$[0]", "-$..a"} {
		p, err := NewPlan(streamFields(sels), Options{MaxDepth: limit})
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range []string{
			`[[[[[1]]]]]`, `[[[[[[1]]]]]]`, `[{"a":[[[[]]]]}]`, `[{"a":[[[[[]]]]]}]`, `{"x":{"y":[[{}]]}}`,
			`{"x":{"y":[[{"z":[]}]]}}`, `[[[[[[`, `{"a":{"a":{"a":{"a":{"a":{}}}}}}`,
		} {
			want := refStream(p, []byte(doc), false, true, 0, 0)
			for _, sizes := range [][]int{nil, {1}, {3}, {7}} {
				compareRuns(t, sels+" "+describe([]byte(doc), sizes), runStream(t, p, StreamOptions{}, []byte(doc), sizes, true, 0, 0), want)
			}
		}
	}
}
