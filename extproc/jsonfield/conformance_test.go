package jsonfield

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// conformanceDocs are checked against json.Valid (see wantValid): the package must accept exactly
// the same documents, apart from invalid UTF-8 and nesting beyond the limit.
var conformanceDocs = []string{
	// Valid.
	`0`, `-0`, `1.5`, `-1.5e10`, `1E+2`, `1e-2`, `0e0`, `-0.0E-0`, `123456789012345678901234567890`,
	`""`, `"\u0000"`, `"\"\\\/\b\f\n\r\t"`, `"\uD834\uDD1E"`, `"\ud800"`, `"\udc00\ud800"`, `"\uFFFF"`,
	`"é"`, `"😀"`, "\"\x7f\"", "\"\u2028\u2029\"", "\"\uFFFD\"", `"` + strings.Repeat("abcdefgh", 9) + `"`,
	`true`, `false`, `null`, `[]`, `{}`, ` [ ] `, "\t\n\r 1 \t\n\r", `[1,2,3]`, `{"a":1,"a":2}`,
	`{"":0}`, `[[[]]]`, `{"a":{"b":[{"c":null}]}}`, `[1e1,-0.0,0E0]`, `{"x":"\u0041\n"}`, `[{},[],""]`,
	`{"a" : [ 1 , { "b" : [ ] } ] }`, `{"\ud800":1}`, `{"a\u0000b":1}`, `{"a":"x","b":-1,"c":true}`,
	// Invalid: structure.
	``, ` `, `[`, `]`, `{`, `}`, `[1,]`, `[,1]`, `[1 2]`, `[,]`, `[1,,2]`, `{"a"}`, `{"a":}`, `{"a" 1}`,
	`{a:1}`, `{'a':1}`, `{"a":1,}`, `{,}`, `{"a":1 "b":2}`, `{"a":1]`, `[1}`, `1 2`, `{} {}`, `[]]`,
	`[1,2`, `{"a":[1,2}`, `"a" "b"`, `{"a":1,"b"`, `{"a":1,"b":`, `{"a":1,`, `{1:2}`, `{"a":1:2}`, `[}`,
	`{]`, `{"a":1}}`, `[[]`, `[]x`, `nullx`, `1,`, `,`, `:`, `[1:2]`,
	// Invalid: bytes outside the grammar.
	"\xef\xbb\xbf{}", `/* c */ 1`, `// c` + "\n1", "1\x00", "\x001", "\v1", "\f1", "\u00a01", "#1", "[1]\xff",
	// Invalid: numbers.
	`01`, `-`, `-01`, `1.`, `.1`, `1e`, `1e+`, `+1`, `0x1`, `NaN`, `Infinity`, `-Infinity`, `1.e5`, `--1`,
	`[-]`, `[1.2.3]`, `[1e5e5]`, `[0-1]`, `[- 1]`, `00`, `1E`, `1e-`, `2.e3`, `[1.]`, `-.5`, `1_000`,
	// Invalid: literals.
	`tru`, `True`, `nul`, `nulls`, `fals`, `falsey`, `[t]`, `[nul]`, `tr ue`,
	// Invalid: strings.
	`"`, `"abc`, `"\"`, `"\x"`, `"\u12"`, `"\u12g4"`, `"\U1234"`, `"\'"`, `"\a"`, "\"\t\"", "\"\n\"",
	"\"\x00\"", "\"\x1f\"", `["a\u00"]`, `{"a\x":1}`, "{\"a\n\":1}", `"abc\`, `"\u`,
	// Invalid (for jsonfield only): UTF-8.
	"\"\xff\"", "\"\xc3\"", "\"\xc3(\"", "\"\xed\xa0\x80\"", "\"\xc0\xaf\"", "\"\xf4\x90\x80\x80\"",
	"{\"\xfe\":1}", "\"abcdefgh\x80\"", "\"\xe2\x82\"",
}

// conformancePlans exercise both code paths: the plain validator and the matching walker.
func conformancePlans(t *testing.T) map[string]*Plan {
	plans := map[string]*Plan{}
	for name, sels := range map[string][]string{
		"none":       nil,
		"descent":    {"$..zz"},
		"wildcards":  {"$[*][*][*].zz", "$.a.b[0]"},
		"root":       {"$"},
		"selections": {"$.a", "$[0]", "$..c"},
	} {
		p, err := NewPlan(fields(sels...), Options{})
		if err != nil {
			t.Fatal(err)
		}
		plans[name] = p
	}
	return plans
}

func TestConformance(t *testing.T) {
	plans := conformancePlans(t)
	for _, doc := range conformanceDocs {
		want := wantValid([]byte(doc), DefaultMaxDepth)
		if err := Validate([]byte(doc)); (err == nil) != want {
			t.Errorf("Validate(%q) = %v, want valid=%v (json.Valid=%v)", doc, err, want, json.Valid([]byte(doc)))
		}
		for name, p := range plans {
			out, _, err := p.Rewrite(nil, []byte(doc), identity)
			if (err == nil) != want {
				t.Errorf("plan %s: Rewrite(%q) err = %v, want valid=%v", name, doc, err, want)
				continue
			}
			if err != nil {
				var se *SyntaxError
				if !errors.As(err, &se) || !errors.Is(err, ErrInvalidJSON) || se.Offset < 0 || se.Offset > len(doc) {
					t.Errorf("plan %s: Rewrite(%q) err = %#v, want a *SyntaxError within the document", name, doc, err)
				}
			} else if string(out) != doc {
				t.Errorf("plan %s: identity Rewrite(%q) = %q", name, doc, out)
			}
		}
	}
}

func TestSyntaxErrorOffsets(t *testing.T) {
	tests := []struct {
		doc    string
		offset int
		msg    string
	}{
		{``, 0, "unexpected end of input"},
		{`   `, 3, "unexpected end of input"},
		{`{"a":1,}`, 7, "expected string for object key"},
		{`{"a" 1}`, 5, "expected : after object key"},
		{`{"a":1 "b":2}`, 7, "expected , or } after object member"},
		{`[1 2]`, 3, "expected , or ] after array element"},
		{`[1,2`, 4, "unexpected end of input"},
		{`{"a":[1,2}`, 9, "expected , or ] after array element"},
		{`{"a":}`, 5, "expected a value"},
		{`[01]`, 2, "expected , or ] after array element"},
		{`[1.]`, 1, "invalid number"},
		{`[-]`, 1, "invalid number"},
		{`[nul]`, 1, "invalid literal"},
		{`{"a":"b`, 5, "unterminated string"},
		{`{"a":"b\q"}`, 7, "invalid escape sequence in string"},
		{`["\u12x4"]`, 2, `invalid \u escape in string`},
		{"[\"ab\tc\"]", 4, "control character in string"},
		{"[\"ab\xffc\"]", 4, "invalid UTF-8 in string"},
		{"{\"k\xff\":1}", 3, "invalid UTF-8 in string"},
		{`{"a":1} x`, 8, "trailing data after top-level value"},
		{"\xef\xbb\xbf{}", 0, "expected a value"},
		{strings.Repeat("[", 1001), 1000, "nesting depth exceeds 1000"},
	}
	plans := conformancePlans(t)
	for _, tt := range tests {
		for name, p := range plans {
			_, _, err := p.Rewrite(nil, []byte(tt.doc), identity)
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Errorf("plan %s: %q: err = %v, want a *SyntaxError", name, tt.doc, err)
				continue
			}
			if se.Offset != tt.offset || se.Msg != tt.msg {
				t.Errorf("plan %s: %q: got offset %d %q, want offset %d %q", name, tt.doc, se.Offset, se.Msg, tt.offset, tt.msg)
			}
			if !strings.Contains(err.Error(), "offset") {
				t.Errorf("error %q does not name the offset", err)
			}
		}
	}
}

// TestSyntaxErrorQuotesNothing checks that error messages never carry document bytes, which may
// belong to a value that was meant to be encrypted.
func TestSyntaxErrorQuotesNothing(t *testing.T) {
	for _, doc := range conformanceDocs {
		secret := strings.ReplaceAll(doc, "a", "SECRETa")
		err := Validate([]byte(secret))
		if err != nil && strings.Contains(err.Error(), "SECRET") {
			t.Errorf("error for %q quotes the document: %v", secret, err)
		}
	}
}

func TestDepthLimit(t *testing.T) {
	nest := func(n int, open, close, inner string) string {
		return strings.Repeat(open, n) + inner + strings.Repeat(close, n)
	}
	tests := []struct {
		name  string
		doc   string
		sels  []string
		depth int
		ok    bool
	}{
		{"arrays at the limit", nest(1000, "[", "]", ""), nil, 0, true},
		{"arrays over the limit", nest(1001, "[", "]", ""), nil, 0, false},
		{"objects at the limit, walker all the way", nest(1000, `{"a":`, "}", "1"), []string{"$..b"}, 0, true},
		{"objects over the limit, walker all the way", nest(1001, `{"a":`, "}", "1"), []string{"$..b"}, 0, false},
		{"walker then validator at the limit", nest(1000, "[", "]", "1"), []string{"$[0][0][0][5]"}, 0, true},
		{"walker then validator over the limit", nest(1001, "[", "]", "1"), []string{"$[0][0][0][5]"}, 0, false},
		{"selected value over the limit", nest(1001, "[", "]", "1"), []string{"$[0][0]"}, 0, false},
		{"custom limit", nest(10, "[", "]", ""), []string{"$..a"}, 10, true},
		{"custom limit exceeded", nest(11, "[", "]", ""), []string{"$..a"}, 10, false},
		{"hostile depth is an error, not a crash", strings.Repeat("[", 1<<20), []string{"$..a"}, 0, false},
		{"hostile depth without selectors", strings.Repeat(`{"a":`, 1<<18), nil, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPlan(fields(tt.sels...), Options{MaxDepth: tt.depth})
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = p.Rewrite(nil, []byte(tt.doc), identity)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "nesting depth exceeds") && len(tt.doc) < 1<<16 {
				t.Errorf("err = %v, want a nesting error", err)
			}
		})
	}
}
