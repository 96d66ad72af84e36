package extproc

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/extproc/blindindex"
	"github.com/rkms/rkms/extproc/policy"
)

// indexedPolicies are the test policies plus "people": an SSN sealed with a blind index
// (digits only, 32 bits) and a lookup by ?ssn=, and "raw", whose key id is a header as is.
func indexedPolicies(ps []policy.Config) []policy.Config {
	return append(ps,
		policy.Config{Name: "people", Match: policy.Match{PathPrefix: "/people"}, KeyID: "tenant-{header:x-tenant-id}",
			Request: policy.Direction{
				Encrypt:    []policy.Field{{Path: "$..ssn", Index: &policy.Index{Name: "ssn_idx", Normalize: []string{"digits"}}}},
				IndexQuery: []policy.IndexQuery{{Param: "ssn", Index: "ssn_idx"}},
			},
			Response: policy.Direction{Decrypt: []policy.Field{{Path: "$.ssn"}, {Path: "$.items[*].ssn"}}}},
		policy.Config{Name: "raw", Match: policy.Match{PathPrefix: "/raw"}, KeyID: "{header:x-tenant-id}",
			Request:  policy.Direction{Encrypt: []policy.Field{{Path: "$.ssn", Index: &policy.Index{Name: "ssn_idx"}}}},
			Response: policy.Direction{Decrypt: []policy.Field{{Path: "$.ssn"}}}},
	)
}

// member returns the top-level member name of a JSON object (nil when absent).
func member(t *testing.T, doc []byte, name string) any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatalf("%s: %v", doc, err)
	}
	return m[name]
}

func TestBlindIndex(t *testing.T) {
	e := newTestEnvWith(t, Options{}, indexedPolicies)
	post := func(tenant, body string) (stored []byte, client []byte) {
		t.Helper()
		x := e.do(envoyCfg{}, jsonReq("POST", "/people", tenant, body))
		if x.client.status != 201 || x.upstream == nil {
			t.Fatalf("POST %s: %d %s", body, x.client.status, x.client.body)
		}
		return x.upstream.body, x.client.body
	}
	idx := func(stored []byte) string {
		t.Helper()
		s, _ := member(t, stored, "ssn_idx").(string)
		if len(s) != 6 { // 32 bits: 4 bytes of base64url without padding
			t.Fatalf("index %q in %s", s, stored)
		}
		return s
	}

	stored, client := post("t1", `{"ssn":"123-45-6789","ssn_idx":"forged"}`)
	first := idx(stored)
	if strings.Contains(string(stored), "123-45-6789") || strings.Contains(string(stored), "forged") || strings.Count(string(stored), "ssn_idx") != 1 {
		t.Fatalf("app received %s", stored)
	}
	if member(t, client, "ssn_idx") != nil || member(t, client, "ssn") != "123-45-6789" {
		t.Errorf("client got %s: want the SSN decrypted and no index", client)
	}

	t.Run("equal within a tenant", func(t *testing.T) {
		for _, v := range []string{`"123 45 6789"`, `"123456789"`, `123456789`} {
			if got := idx(first2(post("t1", `{"ssn":`+v+`}`))); got != first {
				t.Errorf("ssn %s: index %s, want %s", v, got, first)
			}
		}
		if got := idx(first2(post("t1", `{"ssn":"123-45-6780"}`))); got == first {
			t.Errorf("another SSN has the same index")
		}
	})
	t.Run("different across tenants", func(t *testing.T) {
		if got := idx(first2(post("t2", `{"ssn":"123-45-6789"}`))); got == first {
			t.Errorf("tenant t2 has tenant t1's index %s", got)
		}
	})
	t.Run("stable across rotation", func(t *testing.T) {
		e.keys.rotate("tenant-t1")
		stored := first2(post("t1", `{"ssn":"123-45-6789"}`))
		ct, _ := member(t, stored, "ssn").(string)
		if v, err := envelope.KeyVersionFor([]byte(ct), "tenant-t1"); err != nil || v != 2 {
			t.Fatalf("sealed under version %d, %v", v, err)
		}
		if got := idx(stored); got != first {
			t.Errorf("index after rotation %s, want %s", got, first)
		}
	})
	t.Run("nested, null, not indexable", func(t *testing.T) {
		stored := first2(post("t1", `{"a":{"ssn_idx":1,"ssn":null},"ssn_idx":{"x":1}}`))
		if want := `"a":{"ssn":"rkms:`; !strings.Contains(string(stored), want) || !strings.HasSuffix(string(stored), `,"ssn_idx":null}}`) {
			t.Errorf("app received %s", stored)
		}
		x := e.do(envoyCfg{}, jsonReq("POST", "/people", "t1", `{"ssn":{"n":"123-45-6789"}}`))
		if x.client.status != 400 || x.upstream != nil || strings.Contains(string(x.client.body), "123") {
			t.Errorf("object at an indexed field: %d %s", x.client.status, x.client.body)
		}
	})
	t.Run("lookup by query", func(t *testing.T) {
		for _, q := range []string{"ssn=123-45-6789", "SSN=123456789", "s%73n=123+45+6789", "&ssn=123-45-6789&"} {
			x := e.do(envoyCfg{}, jsonReq("GET", "/people?"+q, "t1", ""))
			if x.upstream == nil {
				t.Fatalf("%s: %d %s", q, x.client.status, x.client.body)
			}
			u, _ := url.Parse(x.upstream.path)
			if u.Query().Get("ssn_idx") != first || strings.Contains(x.upstream.path, "6789") {
				t.Errorf("%s reached the app as %s", q, x.upstream.path)
			}
			var list struct{ Items []map[string]any }
			if err := json.Unmarshal(x.client.body, &list); err != nil || x.client.status != 200 || len(list.Items) != 5 {
				t.Fatalf("%s: %d %s", q, x.client.status, x.client.body)
			}
			for _, it := range list.Items {
				if _, ok := it["ssn_idx"]; ok || !strings.Contains(fmt.Sprint(it["ssn"]), "6789") {
					t.Errorf("%s: item %v", q, it)
				}
			}
		}
	})
	t.Run("lookup refusals", func(t *testing.T) {
		for _, q := range []string{"ssn_idx=" + first, "SSN_IDX=x", "ssn=1&ssn=2", "ssn[]=1", "x=1;ssn=2", "%2573sn=1", "ssn=%zz", "ssn=1#frag"} {
			x := e.do(envoyCfg{}, jsonReq("GET", "/people?"+q, "t1", ""))
			if x.client.status != 400 || x.upstream != nil {
				t.Errorf("%s: %d %s (app saw %v)", q, x.client.status, x.client.body, x.upstream)
			}
		}
	})
	t.Run("bulk seal equals ext_proc", func(t *testing.T) {
		var pol *policy.Policy
		for _, p := range e.srv.policies.Policies() {
			if p.Name() == "people" {
				pol = p
			}
		}
		bt := &BodyTransform{Keys: e.keys, Policy: pol, KeyID: "tenant-t1"}
		sealed, _, err := bt.Apply(context.Background(), []byte(`{"ssn":"123-45-6789"}`))
		if err != nil || idx(sealed) != first {
			t.Fatalf("BodyTransform: %v %s, want index %s", err, sealed, first)
		}
		open := &BodyTransform{Keys: e.keys, Policy: pol, KeyID: "tenant-t1", Response: true}
		opened, _, err := open.Apply(context.Background(), sealed)
		if err != nil || string(opened) != `{"ssn":"123-45-6789"}` {
			t.Fatalf("open: %v %s", err, opened)
		}
		bt.KeyID = blindindex.RootKeyID
		if _, _, err := bt.Apply(context.Background(), []byte(`{"ssn":"1"}`)); err == nil || !strings.Contains(err.Error(), "key id") {
			t.Errorf("BodyTransform under the root id: %v", err)
		}
	})
}

func first2(a, _ []byte) []byte { return a }

// TestReservedKeyID: a tenant whose claim is the index root's id (in any case) cannot make rkms
// seal, open or read with the root.
func TestReservedKeyID(t *testing.T) {
	e := newTestEnvWith(t, Options{}, indexedPolicies)
	x := e.do(envoyCfg{}, jsonReq("POST", "/raw", "t1", `{"ssn":"1"}`)) // creates the root
	if x.client.status != 201 {
		t.Fatalf("%d %s", x.client.status, x.client.body)
	}
	for _, id := range []string{blindindex.RootKeyID, "_RKMS.index-root", "_rkms.other"} {
		for _, r := range []httpReq{jsonReq("POST", "/raw", id, `{"ssn":"1"}`), jsonReq("GET", "/raw", id, "")} {
			calls := e.keys.currentCalls()
			x := e.do(envoyCfg{}, r)
			if x.client.status != 400 || x.upstream != nil || !strings.Contains(string(x.client.body), "key id") {
				t.Errorf("%s %s as %s: %d %s", r.method, r.path, id, x.client.status, x.client.body)
			}
			if e.keys.currentCalls() != calls {
				t.Errorf("%s as %s asked for a key", r.method, id)
			}
		}
	}
	// A record sealed under the root id (were one planted in the app) is never opened.
	root, err := e.keys.Version(context.Background(), blindindex.RootKeyID, 1)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := envelope.Seal(nil, root, envelope.Randomized, "ssn", nil, []byte(`"secret"`))
	if err != nil {
		t.Fatal(err)
	}
	x = e.envoy.do(envoyCfg{}, jsonReq("GET", "/raw/1", blindindex.RootKeyID, ""), func(*httpReq) httpResp {
		return httpResp{status: 200, headers: hdrs{{"content-type", "application/json"}}, body: []byte(`{"ssn":"` + string(ct) + `"}`)}
	})
	if x.client.status != 400 || strings.Contains(string(x.client.body), "secret") {
		t.Errorf("open under the root id: %d %s", x.client.status, x.client.body)
	}
}
