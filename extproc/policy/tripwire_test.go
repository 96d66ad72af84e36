package policy

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func mustCompile(t testing.TB, cfgs ...Config) *Set {
	t.Helper()
	set, err := Compile(cfgs)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

var patients = Config{
	Name: "patients", Match: Match{PathPrefix: "/patients"}, KeyID: "tenant-{header:x-tenant-id}",
	Request: Direction{Encrypt: []Field{{Path: "$..ssn"}, {Path: "$..contact.email"}, {Path: "$..cards[*].number"}, {Path: "$.card", Label: "pan"}}},
	Response: Direction{Decrypt: []Field{{Path: "$.ssn"}, {Path: "$.items[*].ssn"}, {Path: "$.contact.email"},
		{Path: "$.cards[*].number"}, {Path: "$.items[*].cards[*].number"}, {Path: "$.card", Label: "pan"}}},
	Allow: []string{"$.doctor.email"},
}

// guardErr runs the request guard of the first policy on body and returns its refusal.
func guardErr(t *testing.T, set *Set, body string) error {
	t.Helper()
	p := set.Policies()[0]
	g := p.Guard([]byte(body))
	_, err := p.Request().Plan().Inspect([]byte(body), g.Check)
	return err
}

func TestGuard(t *testing.T) {
	set := mustCompile(t, patients)
	for _, tc := range []struct {
		name, body string
		want       string // substring of the refusal, "" for none
	}{
		{"ordinary record", `{"name":"Ada","ssn":"1","contact":{"email":"a@x"},"cards":[{"number":"4111"}],"card":"5"}`, ""},
		{"nested record", `{"items":[{"ssn":"1","contact":{"email":"e"}}]}`, ""},
		{"allowed plaintext", `{"doctor":{"email":"d@x"}}`, ""},
		{"untagged names", `{"note":"email me","x":{"y":["ssn"]}}`, ""},
		{"contact as a list", `{"contact":[{"email":"e"}]}`, "field $.contact[0].email has the name of tagged field email"},
		{"cards nested twice", `{"cards":[[{"number":"4111"}]]}`, "field $.cards[0][0].number"},
		{"top-level array under $.card", `[{"pan":"5"}]`, "field $[0].pan"},
		{"label name, not the selector's", `{"x":{"pan":"5"}}`, "field $.x.pan has the name of tagged field pan"},
		{"case folded", `{"a":{"EMAIL":"e"}}`, "field $.a.EMAIL"},
		{"escaped name", `{"a":{"em\u0061il":"e"}}`, "field $.a.email"},
		{"long s folds to s: encrypted like ssn", `{"a":{"ſſn":"1"}}`, ""},
		{"dotless i", `{"a":{"emaıl":"1"}}`, "has the name of tagged field email"},
		{"trailing space", `{"a":{"ssn ":"1"}}`, "has the name of tagged field ssn"},
		{"upper case, beside other members", `{"a":{"EMAIL":"e"},"b":1}`, "field $.a.EMAIL"},
		{"ciphertext in an untagged field", `{"note":"rkms:AAAA"}`, "a ciphertext is not accepted at $.note"},
		{"escaped ciphertext", `{"items":[{"x":"rkms\u003aAAAA"}]}`, "a ciphertext is not accepted at $.items[0].x"},
		{"ciphertext with spaces around", `{"note":"  rkms:AAAA "}`, "a ciphertext is not accepted"},
		{"ciphertext as a member name", `{"a":{"rkms:AAAA":1}}`, "a ciphertext is not accepted as a member name"},
		{"ciphertext inside a sealed value", `{"ssn":{"x":"rkms:AAAA"}}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := guardErr(t, set, tc.body)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var pe *Error
			if !errors.As(err, &pe) || pe.Reason != BadInput || !strings.Contains(pe.Msg, tc.want) {
				t.Fatalf("error %v, want a bad-input error containing %q", err, tc.want)
			}
			for _, v := range []string{"4111", "a@x", "d@x", "AAAA"} {
				if strings.Contains(pe.Msg, v) {
					t.Fatalf("refusal %q echoes a value", pe.Msg)
				}
			}
		})
	}
}

func TestCheckCovered(t *testing.T) {
	base := func(enc, dec []string) Config {
		c := Config{Name: "p", KeyID: "k"}
		for _, e := range enc {
			c.Request.Encrypt = append(c.Request.Encrypt, Field{Path: e})
		}
		for _, d := range dec {
			c.Response.Decrypt = append(c.Response.Decrypt, Field{Path: d})
		}
		return c
	}
	for _, tc := range []struct {
		enc, dec []string
		ok       bool
	}{
		{[]string{"$.ssn"}, []string{"$.ssn"}, true},
		{[]string{"$..ssn"}, []string{"$.ssn", "$.items[*].ssn", "$.a.b[3].ssn"}, true},
		{[]string{"$.ssn"}, []string{"$.items[*].ssn"}, false}, // the oracle of the issue
		{[]string{"$.items[*].ssn"}, []string{"$.items[0].ssn"}, true},
		{[]string{"$.SSN"}, []string{"$.ssn"}, false}, // the selector covers it, but the labels differ
		{[]string{"$..SSN"}, []string{"$.ssn"}, false},
		{[]string{"$.a"}, []string{"$.b"}, false},
	} {
		err := Check([]Config{base(tc.enc, tc.dec)})
		if (err == nil) != tc.ok {
			t.Errorf("encrypt %v, decrypt %v: %v, want ok %v", tc.enc, tc.dec, err, tc.ok)
		}
		c := base(tc.enc, tc.dec)
		c.DecryptOnly = true
		if err := Check([]Config{c}); err != nil {
			t.Errorf("decrypt_only: %v", err)
		}
	}
	// A label must match too: a ciphertext of another label never opens there anyway.
	c := base([]string{"$..ssn"}, nil)
	c.Response.Decrypt = []Field{{Path: "$.ssn", Label: "other"}}
	if err := Check([]Config{c}); err == nil || !strings.Contains(err.Error(), `label "other"`) {
		t.Errorf("other label: %v", err)
	}
	// Egress: the request decrypts what the response encrypts.
	eg := Config{Name: "e", KeyID: "k", Request: Direction{Decrypt: []Field{{Path: "$.token"}}}, Response: Direction{Encrypt: []Field{{Path: "$.token"}}}}
	set := mustCompile(t, eg)
	if p := set.Policies()[0]; p.Request().Inbound() || !p.Response().Inbound() {
		t.Errorf("egress: request inbound %v, response inbound %v", p.Request().Inbound(), p.Response().Inbound())
	}
}

func TestExplain(t *testing.T) {
	c := patients
	set := mustCompile(t, c)
	p := set.Policies()[0]
	body := `{"ssn":"1","contact":[{"email":"e"}],"doctor":{"email":"d"},"note":"rkms:AAAA"}`
	fs, err := p.Explain([]byte(body), false, "tenant-a")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fs {
		got = append(got, f.String())
	}
	want := []string{
		`refuse     $.contact[0].email  label=email  (tagged name not encrypted here)`,
		`left alone $.doctor.email  label=email  (allowed by an allow selector)`,
		`refuse     $.note  (ciphertext outside the encrypted fields)`,
		`encrypt    $.ssn  label=ssn`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	fs, err = p.Explain([]byte(`{"ssn":"plain","card":null,"items":[{"ssn":"rkms:AQEK"}]}`), true, "tenant-a")
	if err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for _, f := range fs {
		got = append(got, f.String())
	}
	want = []string{
		`refuse     $.ssn  label=ssn  (plaintext where a ciphertext is expected)`,
		`left alone $.card  label=pan  (null)`,
		`refuse     $.items[0].ssn  label=ssn  (ciphertext unusable here (other key id, or malformed))`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("response: got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := p.Explain([]byte(`{"ssn":`), false, "k"); err == nil {
		t.Error("invalid JSON explained")
	}
}

func TestCheckHeaders(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		bad         bool
	}{
		{":path", "/patients?id=1", false},
		{":path", "/patients?x=rkms:AAAA", true},
		{":path", "/patients?x=rkms%3AAAAA", true},
		{":path", "/patients?x=rkms%253aAAAA", true},
		{"cookie", "s=rkms:AAAA", true},
		{"x-request-id", "abc", false},
	} {
		err := CheckHeaders(testHeaders{tc.name: {tc.value}})
		if (err != nil) != tc.bad {
			t.Errorf("%s: %q: %v, want refused %v", tc.name, tc.value, err, tc.bad)
		}
	}
}

// TestGuardAllow: allow selectors cover a tagged name where they select its value or a value
// around it, for every occurrence, and nowhere else.
func TestGuardAllow(t *testing.T) {
	c := patients
	c.Allow = []string{"$.items[*].doctor.email", "$.staff"}
	set := mustCompile(t, c)
	var many strings.Builder
	many.WriteString(`{"items":[`)
	for i := range 2000 {
		if i > 0 {
			many.WriteByte(',')
		}
		many.WriteString(`{"doctor":{"email" : "d@x"}}`)
	}
	many.WriteString(`]}`)
	for _, tc := range []struct {
		body string
		ok   bool
	}{
		{many.String(), true},
		{`{"staff":{"a":{"email":"s@x"},"ssn":"1"}}`, true}, // inside an allowed value
		{`{"items":[{"doctor":{"email":"d@x"}},{"nurse":{"email":"n@x"}}]}`, false},
		{`{"doctor":{"email":"d@x"}}`, false}, // the allow selector names items[*] only
	} {
		err := guardErr(t, set, tc.body)
		if (err == nil) != tc.ok {
			t.Errorf("%.60s: %v, want allowed %v", tc.body, err, tc.ok)
		}
	}
}

// FuzzTripName checks that the ASCII fast path of tripName gives what the rune-by-rune
// comparison form does, for every ASCII name (the seeds cover every ASCII byte, white space at
// either end and the letters that case-fold beyond ASCII: k and s).
func FuzzTripName(f *testing.F) {
	all := make([]byte, 128)
	for i := range all {
		all[i] = byte(i)
	}
	for _, s := range []string{"", "ssn", " SSN\t", "ſsn", "e\u00admail", "Pan", " number ", "numbeR\v", "\v\f\r\n kelvin  ", "Email", "a b", "\x00\x7f", string(all)} {
		f.Add([]byte(s))
	}
	pol := mustCompile(f, patients).Policies()[0]
	g := pol.Guard(nil)
	f.Fuzz(func(t *testing.T, name []byte) {
		// The guard's lookup (with its length filter) finds what the map of folded names has.
		wantLabel, wantOK := pol.tagged[string(tripNameRunes(nil, name))]
		if label, ok := g.taggedLabel(name); label != wantLabel || ok != wantOK {
			t.Fatalf("taggedLabel(%q) = %q, %v; want %q, %v", name, label, ok, wantLabel, wantOK)
		}
		if !isASCII(name) {
			return
		}
		fast, slow := tripNameASCII(nil, name), tripNameRunes(nil, name)
		if !bytes.Equal(fast, slow) {
			t.Fatalf("tripName(%q): ASCII path %q, rune path %q", name, fast, slow)
		}
		if got := tripName(nil, name); !bytes.Equal(got, slow) {
			t.Fatalf("tripName(%q) = %q, want %q", name, got, slow)
		}
	})
}

// FuzzContainsMarker compares the tripwire's marker search with bytes.Contains.
func FuzzContainsMarker(f *testing.F) {
	for _, s := range []string{"", "rkms", "rkms:", ":rkms:", "xrkms:y", "rkm:s:", "rkms;rkms:", "::::", "rrkms:", "rkmsrkms:"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, s []byte) {
		if got, want := containsMarker(s), bytes.Contains(s, []byte(CiphertextMarker)); got != want {
			t.Fatalf("containsMarker(%q) = %v, want %v", s, got, want)
		}
	})
}
