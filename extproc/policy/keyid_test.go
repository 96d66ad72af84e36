package policy

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/extproc/jsonfield"
)

// testHeaders is a Headers from a map of lowercase names (in sorted order).
type testHeaders map[string][]string

func (h testHeaders) pairs() [][2]string {
	var out [][2]string
	for _, k := range slices.Sorted(maps.Keys(h)) {
		for _, v := range h[k] {
			out = append(out, [2]string{k, v})
		}
	}
	return out
}

func (h testHeaders) Len() int                      { return len(h.pairs()) }
func (h testHeaders) At(i int) (name, value string) { p := h.pairs()[i]; return p[0], p[1] }

func TestSingleHeader(t *testing.T) {
	h := testHeaders{"x": {"a"}, "dup": {"a", "b"}, "same": {"s", "s"}, "empty": {""}, "empty-then": {"", "b"}}
	for _, tc := range []struct {
		name, want string
		err        error
	}{
		{"x", "a", nil}, {"same", "s", nil}, {"dup", "", errHeaderMultiple},
		{"empty", "", errHeaderMissing}, {"empty-then", "", errHeaderMissing}, {"absent", "", errHeaderMissing},
	} {
		if got, err := single(h, tc.name); got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("single(%q) = %q, %v; want %q, %v", tc.name, got, err, tc.want, tc.err)
		}
	}
}

func TestKeyIDTemplate(t *testing.T) {
	headers := testHeaders(map[string][]string{"x-tenant-id": {"acme"}, "x-dup": {"a", "b"}, "x-same": {"s", "s"}, "x-space": {"a b"}, ":authority": {"api.test"}})
	for _, tc := range []struct {
		tmpl, path, body string
		want             string // computed key id, or "" for an error
		wantMsg          string
	}{
		{tmpl: "fixed-key", want: "fixed-key"},
		{tmpl: "tenant-{header:x-tenant-id}", want: "tenant-acme"},
		{tmpl: "{header:X-Tenant-Id}/{path:0}/{path:2}", path: "/orgs/o1/items/9", want: "acme/orgs/items"},
		{tmpl: "h-{header::authority}", want: "h-api.test"},
		{tmpl: "o:{json:$.org}", body: `{"org":"o-7"}`, want: "o:o-7"},
		{tmpl: "n{json:$.a.n}", body: `{"a":{"n":42}}`, want: "n42"},
		{tmpl: "e{json:$.s}", body: `{"s":"a\u002db"}`, want: "ea-b"},
		{tmpl: "{header:x-same}", want: "s"},
		{tmpl: "{header:x-missing}", wantMsg: "header x-missing missing"},
		{tmpl: "{header:x-dup}", wantMsg: "several different values"},
		{tmpl: "{header:x-space}", wantMsg: "computed key id is invalid"},
		{tmpl: "{path:3}", path: "/a/b", wantMsg: "path segment 3 missing"},
		{tmpl: "{path:1}", path: "/a//c", wantMsg: "path segment 1 missing"},
		{tmpl: "{json:$.org}", body: "", wantMsg: "no request body"},
		{tmpl: "{json:$.org}", body: `{"x":1}`, wantMsg: "exactly one value"},
		{tmpl: "{json:$..org}", body: `{"org":"a","b":{"org":"c"}}`, wantMsg: "exactly one value"},
		{tmpl: "{json:$.org}", body: `{"org":true}`, wantMsg: "not a string or a number"},
		{tmpl: "{json:$.org}", body: `{"org":"a"`, wantMsg: "invalid json"},
		{tmpl: "{json:$.org}", body: `{"org":""}`, wantMsg: "computed key id is invalid"},
		{tmpl: "x{json:$.org}", body: `{"org":"` + strings.Repeat("a", 256) + `"}`, wantMsg: "computed key id is invalid"},
	} {
		t.Run(tc.tmpl+tc.body, func(t *testing.T) {
			kt, err := parseKeyIDTemplate(tc.tmpl)
			if err != nil {
				t.Fatal(err)
			}
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			got, err := kt.Eval(&Source{Headers: headers, Path: tc.path, Body: body})
			if tc.want != "" {
				if err != nil || got != tc.want {
					t.Fatalf("eval = %q, %v; want %q", got, err, tc.want)
				}
				return
			}
			var pe *Error
			if !errors.As(err, &pe) && !strings.Contains(tc.wantMsg, "invalid json") || pe != nil && pe.Reason != BadInput || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("eval = %q, %v; want a bad-input error containing %q", got, err, tc.wantMsg)
			}
		})
	}
}

func TestKeyIDTemplateErrors(t *testing.T) {
	for _, tmpl := range []string{
		"", "a b", "{", "}", "a}", "{header}", "{header:}", "{header:a b}", "{path:-1}", "{path:01}", "{path:64}",
		"{path:x}", "{json:a}", "{json:$.a[}", "{cookie:x}", "{{header:a}}", "ä", strings.Repeat("a", 257),
	} {
		if _, err := parseKeyIDTemplate(tmpl); err == nil {
			t.Errorf("%q accepted", tmpl)
		}
	}
}

// FuzzKeyIDTemplate: parsing never panics; an accepted template renders to a canonical form that
// parses to the same template, and evaluating it never panics and yields a valid key id or a
// bad-input error.
func FuzzKeyIDTemplate(f *testing.F) {
	for _, s := range []string{
		"tenant-{header:x-tenant-id}", "{json:$.org}", "a/{path:0}/{path:12}", "{json:$['a b'].c[*]}",
		"{header::authority}", "k", "{json:$..x}", "{path:9}{path:1}", "a{", "}{",
	} {
		f.Add(s, `{"org":"o","x":1}`, "/a/b/c")
	}
	f.Fuzz(func(t *testing.T, tmpl, body, path string) {
		kt, err := parseKeyIDTemplate(tmpl)
		if err != nil {
			return
		}
		canon := kt.String()
		kt2, err := parseKeyIDTemplate(canon)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", canon, tmpl, err)
		}
		if kt2.String() != canon || kt2.needsBody != kt.needsBody {
			t.Fatalf("round trip %q -> %q -> %q", tmpl, canon, kt2.String())
		}
		id, err := kt.Eval(&Source{Headers: testHeaders(map[string][]string{"x-tenant-id": {body}}), Path: path, Body: []byte(body)})
		var pe *Error
		switch {
		case err == nil:
			if envelope.ValidateKeyID(id) != nil {
				t.Fatalf("eval gave invalid key id %q", id)
			}
		case errors.Is(err, jsonfield.ErrInvalidJSON):
		case !errors.As(err, &pe) || pe.Reason != BadInput:
			t.Fatalf("eval error %v is not a bad-input error", err)
		}
	})
}

// TestContextTemplate: a record binding must bind something: an empty computed value (an empty
// JSON member) is refused rather than sealing without a binding.
func TestContextTemplate(t *testing.T) {
	ct, err := parseTemplate("{json:$.id}", true)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := ct.Eval(&Source{Body: []byte(`{"id":"r1"}`)}); err != nil || v != "r1" {
		t.Errorf("context = %q, %v", v, err)
	}
	if v, err := ct.Eval(&Source{Body: []byte(`{"id":""}`)}); err == nil {
		t.Errorf("empty context accepted: %q", v)
	}
	if _, err := parseTemplate("fixed", true); err == nil {
		t.Error("a constant context accepted")
	}
}
