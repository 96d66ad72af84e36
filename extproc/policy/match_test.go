package policy

import (
	"errors"
	"strings"
	"testing"
)

func TestCanonical(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/patients", "/patients"},
		{"/patients?x=1", "/patients"},
		{"/patients#frag", "/patients"},
		{"//patients", "/patients"},
		{"/./patients", "/patients"},
		{"/x/../patients", "/patients"},
		{"/../patients", "/patients"},
		{"/patients/", "/patients"},
		{"/%70atients", "/patients"},
		{"/pat%69ents/%7e", "/patients/~"},
		{"/%2e/patients", "/patients"},
		{"/%2E%2E/patients", "/patients"},
		{"/%2fpatients", "/%2Fpatients"},
		{"/a%5cb", "/a%5Cb"},
		{"/a%zzb", "/a%zzb"},
		{"/a%4", "/a%4"},
		{"", "/"},
		{"*", "/*"},
		{"http://h/patients", "/http:/h/patients"},
	} {
		if got := Canonical(tc.in); got != tc.want {
			t.Errorf("Canonical(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestLooseForm(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/%2Fpatients", "/patients"},
		{"/%252Fpatients", "/patients"},
		{"/\\patients", "/patients"},
		{"/a%5C..%5Cpatients", "/patients"},
		{"/patients;jsessionid=1/x", "/patients/x"},
		{"/pat%00ients", "/patients"},
		{"/x%3F/../patients", "/x"},
		{"http://evil/patients", "/patients"},
		{"/a/%2e%2e/patients", "/patients"},
	} {
		if got := looseForm(tc.in); got != tc.want {
			t.Errorf("looseForm(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct{ a, b string }{
		{"/PATIENTS", "/patients"}, {"/patientſ", "/patients"}, {"/patıents", "/patients"}, {"/patİents", "/patients"},
		{"/\u212Aey", "/key"},
	} {
		if fa, fb := foldLoose(tc.a, true), foldLoose(tc.b, true); fa != fb {
			t.Errorf("foldLoose(%q) = %q, foldLoose(%q) = %q; want equal", tc.a, fa, tc.b, fb)
		}
	}
}

func TestSelect(t *testing.T) {
	set, err := Compile([]Config{
		{Name: "patients", Match: Match{PathPrefix: "/patients", Methods: []string{"POST", "GET"}}, KeyID: "k",
			Request: Direction{Encrypt: []Field{{Path: "$..ssn"}}}, Response: Direction{Decrypt: []Field{{Path: "$.ssn"}}}},
		{Name: "exact", Match: Match{PathPrefix: "/Exact"}, KeyID: "k", CaseSensitive: true,
			Request: Direction{Encrypt: []Field{{Path: "$.a"}}}},
		{Name: "named", KeyID: "k", Request: Direction{Encrypt: []Field{{Path: "$.a"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*Policy{}
	for _, p := range set.Policies() {
		byName[p.Name()] = p
	}
	for _, tc := range []struct {
		named, method, path string
		body                bool
		want                string // policy name, "" for none, "!" for a refusal
	}{
		{"", "POST", "/patients", true, "patients"},
		{"", "GET", "/patients/1", false, "patients"},
		{"", "GET", "/PATIENTS", false, "patients"},
		{"", "GET", "/Patients/1?x", false, "patients"},
		{"", "POST", "//patients", true, "patients"},
		{"", "POST", "/x/../patients", true, "patients"},
		{"", "POST", "/%70atients", true, "patients"},
		{"", "POST", "/%2Fpatients", true, "!"},
		{"", "POST", "/%5Cpatients", true, "!"},
		{"", "POST", "/patients;a=b", true, "patients"},
		{"", "POST", "/p;x/../patients", true, "patients"},
		{"", "POST", "/patientſ", true, "!"},
		{"", "POST", "/patient%C5%BF", true, "!"},
		{"", "POST", "/pat%C4%B0ents", true, "!"},
		{"", "POST", "/pat%00ients", true, "!"},
		{"", "POST", "http://h/patients", true, "!"},
		{"", "DELETE", "/patients/1", false, ""},
		{"", "DELETE", "/patients/1", true, "patients"},
		{"", "post", "/patients", false, "patients"},
		{"", "GET", "/other", false, ""},
		{"", "GET", "/%2Fother", false, ""},
		{"", "POST", "/Exact/x", true, "exact"},
		{"", "POST", "/EXACT/x", true, ""},
		{"", "POST", "/%2FExact", true, "!"},
		{"named", "GET", "/anything", false, "named"},
		{"patients", "GET", "/%2Fanything", false, "patients"},
	} {
		p, _, err := set.Select(tc.named, Request{Method: tc.method, Path: tc.path, HasBody: tc.body})
		got := ""
		switch {
		case err != nil:
			var pe *Error
			if !errors.As(err, &pe) || pe.Reason != BadInput || !strings.Contains(pe.Msg, "ambiguous request path") {
				t.Errorf("Select(%s %s): error %v, want an ambiguous path error", tc.method, tc.path, err)
			}
			got = "!"
		case p != nil:
			got = p.Name()
		}
		if got != tc.want {
			t.Errorf("Select(%q, %s %q, body %v) = %q, want %q", tc.named, tc.method, tc.path, tc.body, got, tc.want)
		}
	}
	if _, _, err := set.Select("nope", Request{Method: "GET", Path: "/"}); !errors.Is(err, ErrUnknownPolicy) {
		t.Errorf("unknown name: %v", err)
	}
	if _, canon, _ := set.Select("", Request{Method: "GET", Path: "/a/./b//c?q"}); canon != "/a/b/c" {
		t.Errorf("canonical path %q", canon)
	}
}

func TestCanonicalPrefix(t *testing.T) {
	for pp, ok := range map[string]bool{
		"/": true, "/patients": true, "/patients/": true, "/a/b": true,
		"patients": false, "/a//b": false, "/a/./b": false, "/a/../b": false, "/%70": false, "/a b": false,
		"/a\\b": false, "/a;b": false, "/ä": false, "/a?": false,
	} {
		if _, got := canonicalPrefix(pp); got != ok {
			t.Errorf("canonicalPrefix(%q) = %v, want %v", pp, got, ok)
		}
	}
}

func FuzzCanonical(f *testing.F) {
	for _, s := range []string{"/patients", "//a/../b", "/%2F%2e%2E/x", "/a%", "/\\x;y", "http://h/p", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		c := Canonical(raw)
		if c == "" || c[0] != '/' || !isClean(c) {
			t.Fatalf("Canonical(%q) = %q is not a clean absolute path", raw, c)
		}
		if Canonical(c) != c {
			t.Fatalf("Canonical is not idempotent: %q -> %q -> %q", raw, c, Canonical(c))
		}
		l := looseForm(raw)
		if l == "" || l[0] != '/' || !isClean(l) {
			t.Fatalf("looseForm(%q) = %q is not a clean absolute path", raw, l)
		}
		if isPlain(cutQuery(raw)) && (l != c || foldLoose(l, true) != asciiUpper(c)) {
			t.Fatalf("plain path %q: loose %q, canonical %q", raw, l, c)
		}
	})
}
