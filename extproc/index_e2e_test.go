package extproc

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/rkms/rkms/envoy"
	"github.com/rkms/rkms/extproc/policy"
	"github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/internal/testing/envoytest"
)

// TestEnvoyBlindIndex runs envoy/ingress.yaml in the real Envoy with the patients policy
// indexing the SSN (digits only) and turning ?ssn= into ?ssn_idx= on lookups: records are
// sealed with an index through POST, found by the app by index alone through GET
// /patients?ssn=..., and come back decrypted without the index member; the plaintext never
// reaches the app, neither in bodies nor in the query.
func TestEnvoyBlindIndex(t *testing.T) {
	testenv.Integration(t)
	cfg, err := envoy.Config("ingress.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pols := ingressPolicies(t)
	for i := range pols {
		if pols[i].Name == "patients" {
			pols[i].Request.Encrypt[0] = policy.Field{Path: "$..ssn", Index: &policy.Index{Name: "ssn_idx", Normalize: []string{"digits"}}}
			pols[i].Request.IndexQuery = []policy.IndexQuery{{Param: "ssn", Index: "ssn_idx"}}
		}
	}
	s := startStackWith(t, cfg, Options{}, stackConfig{upstream: "app", policies: pols})
	t1, t2 := envoytest.Bearer(t, "t1"), envoytest.Bearer(t, "t2")

	post := func(tenant []string, body string) map[string]any {
		t.Helper()
		r := s.do(t, "POST", "/patients", body, tenant...)
		if r.status != 201 {
			t.Fatalf("POST: %d %s", r.status, r.body)
		}
		var m map[string]any
		if err := json.Unmarshal(r.body, &m); err != nil {
			t.Fatal(err)
		}
		if _, ok := m["ssn_idx"]; ok {
			t.Errorf("client got the index: %s", r.body)
		}
		stored, _ := s.app.Record("patients", m["id"].(string))
		var st map[string]any
		if err := json.Unmarshal(stored, &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	a := post(t1, `{"name":"Ada","ssn":"123-45-6789","ssn_idx":"forged"}`)
	b := post(t1, `{"name":"Bob","ssn":"123 45 6789"}`)
	c := post(t2, `{"name":"Cy","ssn":"123-45-6789"}`)
	post(t1, `{"name":"Dee","ssn":"987-65-4321"}`)
	if a["ssn_idx"] == "forged" || a["ssn_idx"] != b["ssn_idx"] || a["ssn_idx"] == c["ssn_idx"] {
		t.Fatalf("indexes: t1 %v and %v (want equal, not forged), t2 %v (want different)", a["ssn_idx"], b["ssn_idx"], c["ssn_idx"])
	}

	r := s.do(t, "GET", "/patients?ssn=123456789", "", t1...)
	if r.status != 200 {
		t.Fatalf("lookup: %d %s", r.status, r.body)
	}
	var list struct{ Items []map[string]any }
	if err := json.Unmarshal(r.body, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 2 || list.Items[0]["name"] != "Ada" || list.Items[1]["name"] != "Bob" {
		t.Fatalf("lookup found %s", r.body)
	}
	for _, it := range list.Items {
		if _, ok := it["ssn_idx"]; ok || !strings.Contains(it["ssn"].(string), "45") {
			t.Errorf("item %v: want the SSN decrypted and no index", it)
		}
	}
	got := s.app.Received()
	last := got[len(got)-1]
	u, _ := url.Parse(last.RawURI)
	if u.Query().Get("ssn_idx") != a["ssn_idx"] || strings.Contains(last.RawURI, "6789") {
		t.Errorf("the app received %s", last.RawURI)
	}
	for _, rec := range got {
		if strings.Contains(string(rec.Body), "6789") || strings.Contains(rec.RawURI, "6789") {
			t.Errorf("plaintext reached the app: %s %s", rec.RawURI, rec.Body)
		}
	}
	before := len(got)
	for _, q := range []string{"ssn_idx=" + url.QueryEscape(a["ssn_idx"].(string)), "ssn[]=123456789", "x=1;ssn=123456789", "ssn=1&ssn=2"} {
		if r := s.do(t, "GET", "/patients?"+q, "", t1...); r.status != 400 {
			t.Errorf("GET ?%s: %d %s", q, r.status, r.body)
		}
	}
	if n := len(s.app.Received()); n != before {
		t.Errorf("refused lookups reached the app (%d requests)", n-before)
	}
}
