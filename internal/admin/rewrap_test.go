package admin

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/internal/access"
	"github.com/rkms/rkms/internal/keyservice"
	"github.com/rkms/rkms/keyring/keyringtest"
	"github.com/rkms/rkms/secret"
)

const (
	migratorToken     = "migrator-token-0123456789"
	rewrapReaderToken = "reader-token-0123456789ab"
)

// rewrapServer is the admin API on a real loopback HTTP server over a fake keyring with t1 at
// version 3 and gone deleted; migrator may rewrap tenant- and t ids, reader may only read.
type rewrapServer struct {
	url   string
	keys  *keyringtest.Fake
	audit *bytes.Buffer
}

func newRewrapServer(t *testing.T) *rewrapServer {
	t.Helper()
	f := keyringtest.NewFake()
	f.Put("t1", 3)
	f.Put("other", 2)
	f.Put("gone", 1)
	if err := f.Delete(context.Background(), "gone"); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	h, err := newHandler(f, keyservice.Options{Logger: slog.New(slog.NewJSONHandler(&buf, nil)), Credentials: []keyservice.Credential{
		{Principal: access.Principal{Name: "migrator", Allow: []string{access.Rewrap}, IDPrefixes: []string{"t", "gone"}}, Token: migratorToken},
		{Principal: access.Principal{Name: "reader", Allow: []string{access.Read}}, Token: rewrapReaderToken},
	}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &rewrapServer{url: srv.URL, keys: f, audit: &buf}
}

// sealAt seals pt under version v of id in the fake keyring.
func (s *rewrapServer) sealAt(t *testing.T, id string, v uint32, mode envelope.Mode, label string, ctx []byte, pt string) string {
	t.Helper()
	dk, err := s.keys.GetVersion(context.Background(), id, v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := envelope.Seal(nil, envelope.Key(dk), mode, label, ctx, []byte(pt))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func (s *rewrapServer) openAt(t *testing.T, id string, v uint32, label string, ctx []byte, text string) (string, error) {
	t.Helper()
	dk, err := s.keys.GetVersion(context.Background(), id, v)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := envelope.Open(nil, envelope.Key(dk), label, ctx, []byte(text))
	return string(pt), err
}

func (s *rewrapServer) post(t *testing.T, token, contentType string, body io.Reader, contentLength int64) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("POST", s.url+"/v1/rewrap", body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = contentLength
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

func (s *rewrapServer) postJSON(t *testing.T, token, body string) (int, []byte) {
	t.Helper()
	return s.post(t, token, "application/json", strings.NewReader(body), int64(len(body)))
}

type itemJSON struct {
	Ciphertext string `json:"ciphertext"`
	Version    uint32 `json:"version"`
	Rewrapped  *bool  `json:"rewrapped"`
	Error      *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// TestRewrapHTTP: a mixed batch over the real server, one result per item in order, the values
// kept with their label and context, and the audit records (one per call, plus one denial per
// refused id), with neither ciphertexts nor values in the log.
func TestRewrapHTTP(t *testing.T) {
	s := newRewrapServer(t)
	tctx := []byte("tenant=acme")
	old := s.sealAt(t, "t1", 1, envelope.Randomized, "ssn", tctx, `"123-45-6789"`)
	cur := s.sealAt(t, "t1", 3, envelope.Randomized, "ssn", nil, `"987-65-4321"`)
	det := s.sealAt(t, "t1", 2, envelope.Deterministic, "email", nil, `"a@example.com"`)
	forbidden := s.sealAt(t, "other", 1, envelope.Randomized, "ssn", nil, `"x"`)
	goneOut, err := envelope.Seal(nil, envelope.Key{ID: "gone", Version: 1, Secret: secret.New(make([]byte, 32))}, envelope.Randomized, "ssn", nil, []byte(`"x"`))
	if err != nil {
		t.Fatal(err)
	}
	gone := string(goneOut)
	b64 := base64.StdEncoding.EncodeToString(tctx)
	body := fmt.Sprintf(`{"items":[
		{"key_id":"t1","label":"ssn","context":%q,"ciphertext":%q},
		{"key_id":"t1","label":"ssn","ciphertext":%q},
		{"key_id":"t1","label":"email","ciphertext":%q},
		{"key_id":"t1","label":"wrong","context":%q,"ciphertext":%q},
		{"key_id":"other","label":"ssn","ciphertext":%q},
		{"key_id":"t1","label":"ssn","ciphertext":%q},
		{"key_id":"gone","label":"ssn","ciphertext":%q},
		{"key_id":"t-nobody","label":"ssn","ciphertext":"rkms:nope"},
		{"key_id":"bad id","label":"ssn","ciphertext":%q}
	]}`, b64, old, cur, det, b64, old, forbidden, forbidden, gone, old)
	st, out := s.postJSON(t, migratorToken, body)
	if st != http.StatusOK {
		t.Fatalf("status %d: %s", st, out)
	}
	var resp struct{ Items []itemJSON }
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&resp); err != nil || len(resp.Items) != 9 {
		t.Fatalf("response %s: %v", out, err)
	}
	it := resp.Items
	if it[0].Error != nil || it[0].Rewrapped == nil || !*it[0].Rewrapped || it[0].Version != 3 {
		t.Fatalf("old: %s", out)
	}
	if pt, err := s.openAt(t, "t1", 3, "ssn", tctx, it[0].Ciphertext); err != nil || pt != `"123-45-6789"` {
		t.Fatalf("the rewrapped value opens to %q, %v", pt, err)
	}
	if it[1].Error != nil || it[1].Rewrapped == nil || *it[1].Rewrapped || it[1].Ciphertext != cur || it[1].Version != 3 {
		t.Fatalf("current: %+v", it[1])
	}
	if h, err := envelope.Parse([]byte(it[2].Ciphertext)); err != nil || h.Mode != envelope.Deterministic || h.KeyVersion != 3 {
		t.Fatalf("deterministic: %+v, %v", h, err)
	}
	for i, code := range map[int]string{3: "authentication_failed", 4: "forbidden", 5: "invalid_argument", 6: "deleted", 7: "invalid_argument", 8: "invalid_argument"} {
		if it[i].Error == nil || it[i].Error.Code != code || it[i].Error.Message == "" || it[i].Ciphertext != "" || it[i].Rewrapped != nil {
			t.Errorf("item %d: %+v, want error %s", i, it[i], code)
		}
	}
	if !bytes.Contains(out, []byte(`{"error":{"code":"forbidden","message":"not allowed: this credential lacks the rewrap permission for this key id"}}`)) {
		t.Errorf("forbidden item: %s", out)
	}

	logs := s.audit.String()
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d audit records, want a denial and the batch record:\n%s", len(lines), logs)
	}
	var denial, batch map[string]any
	_ = json.Unmarshal([]byte(lines[0]), &denial)
	_ = json.Unmarshal([]byte(lines[1]), &batch)
	if denial["op"] != "rewrap" || denial["key_id"] != "other" || denial["result"] != "denied" || denial["principal"] != "migrator" {
		t.Errorf("denial: %s", lines[0])
	}
	if batch["api"] != "http" || batch["op"] != "rewrap" || batch["items"] != 9.0 || batch["rewrapped"] != 2.0 || batch["unchanged"] != 1.0 ||
		batch["failed"] != 6.0 || batch["key_id_count"] != 4.0 || batch["result"] != "ok" || batch["principal"] != "migrator" {
		t.Errorf("batch record: %s", lines[1])
	}
	for _, leak := range []string{old[10:40], cur[10:40], det[10:40], "123-45-6789", "a@example.com", b64} {
		if strings.Contains(logs, leak) {
			t.Errorf("the audit log carries %q:\n%s", leak, logs)
		}
	}
}

// TestRewrapHTTPRefusals: whole-call refusals in the admin API's error shape, each audited as
// a rewrap (denied or invalid).
func TestRewrapHTTPRefusals(t *testing.T) {
	item := `{"key_id":"t1","label":"ssn","ciphertext":"rkms:x"}`
	many := `{"items":[` + strings.Repeat(item+",", keyservice.MaxRewrapItems) + item + `]}`
	tests := []struct {
		name        string
		token       string
		contentType string
		body        string
		chunked     bool
		want        int
		wantError   string
		result      string // the audit record's result; "" none
	}{
		{"no token", "", "application/json", `{"items":[]}`, false, 401, "bearer", "denied"},
		{"reader may not rewrap", rewrapReaderToken, "application/json", `{"items":[` + item + `]}`, false, 200, "", "ok"},
		{"content type", migratorToken, "text/plain", `{"items":[]}`, false, 415, "content type", "invalid"},
		{"no content type", migratorToken, "", `{"items":[]}`, false, 415, "content type", "invalid"},
		{"charset allowed", migratorToken, "application/json; charset=utf-8", `{"items":[]}`, false, 200, "", "ok"},
		{"not JSON", migratorToken, "application/json", `{"items":[`, false, 400, "not JSON", "invalid"},
		{"empty body", migratorToken, "application/json", ``, false, 400, "not a JSON object", "invalid"},
		{"unknown member", migratorToken, "application/json", `{"items":[],"dry_run":true}`, false, 400, `unknown member "dry_run"`, "invalid"},
		{"unknown item member", migratorToken, "application/json", `{"items":[{"key_id":"t1","keyid":"t2"}]}`, false, 400, `unknown member "keyid"`, "invalid"},
		{"case variant", migratorToken, "application/json", `{"ITEMS":[]}`, false, 400, `unknown member "ITEMS"`, "invalid"},
		{"duplicate member", migratorToken, "application/json", `{"items":[],"items":[]}`, false, 400, "more than once", "invalid"},
		{"duplicate item member", migratorToken, "application/json", `{"items":[{"key_id":"t1","key_id":"t2"}]}`, false, 400, "more than once", "invalid"},
		{"trailing data", migratorToken, "application/json", `{"items":[]} {}`, false, 400, "data after", "invalid"},
		{"too deep", migratorToken, "application/json", `{"items":[{"key_id":["t1"]}]}`, false, 400, "nested deeper", "invalid"},
		{"items missing", migratorToken, "application/json", `{}`, false, 400, "items is required", "invalid"},
		{"items null", migratorToken, "application/json", `{"items":null}`, false, 400, "items is required", "invalid"},
		{"wrong type", migratorToken, "application/json", `{"items":[{"key_id":1}]}`, false, 400, "items.key_id has the wrong JSON type", "invalid"},
		{"not an object", migratorToken, "application/json", `[]`, false, 400, "wrong JSON type", "invalid"},
		{"context not base64", migratorToken, "application/json", `{"items":[{"key_id":"t1","context":"a-b_"}]}`, false, 400, "items[0].context", "invalid"},
		{"too many items", migratorToken, "application/json", many, false, 400, "at most 1000", "invalid"},
		{"body too large", migratorToken, "application/json", `{"items":[],"x":"` + strings.Repeat("a", keyservice.MaxRewrapRequestBytes) + `"}`, false, 413, "too large", ""},
		{"chunked body too large", migratorToken, "application/json", `{"items":[],"x":"` + strings.Repeat("a", keyservice.MaxRewrapRequestBytes) + `"}`, true, 413, "too large", "invalid"},
		{"chunked body", migratorToken, "application/json", `{"items":[]}`, true, 200, "", "ok"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newRewrapServer(t)
			n := int64(len(tc.body))
			var body io.Reader = strings.NewReader(tc.body)
			if tc.chunked {
				n, body = -1, io.MultiReader(body) // hides the length: sent chunked
			}
			st, out := s.post(t, tc.token, tc.contentType, body, n)
			if st != tc.want {
				t.Fatalf("status %d, want %d: %.300s", st, tc.want, out)
			}
			if tc.want != http.StatusOK {
				var e struct{ Error string }
				if err := json.Unmarshal(out, &e); err != nil || !strings.Contains(e.Error, tc.wantError) {
					t.Fatalf("error body %.300s, want an error with %q", out, tc.wantError)
				}
			}
			logs := s.audit.String()
			if tc.result == "" {
				if logs != "" {
					t.Fatalf("audited: %s", logs)
				}
			} else if !strings.Contains(logs, `"op":"rewrap"`) || !strings.Contains(logs, `"result":"`+tc.result+`"`) {
				t.Fatalf("no rewrap record with result %s:\n%s", tc.result, logs)
			}
		})
	}
}

// TestRewrapHTTPMethodAndQuery: only POST, and no query parameters.
func TestRewrapHTTPMethodAndQuery(t *testing.T) {
	s := newRewrapServer(t)
	for _, tc := range []struct {
		method, target string
		want           int
	}{
		{"GET", "/v1/rewrap", http.StatusMethodNotAllowed},
		{"POST", "/v1/rewrap?dry_run=true", http.StatusBadRequest},
		{"POST", "/api/v1/v1/rewrap", http.StatusNotFound},
	} {
		req, _ := http.NewRequest(tc.method, s.url+tc.target, strings.NewReader(`{"items":[]}`))
		req.Header.Set("Authorization", "Bearer "+migratorToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.target, resp.StatusCode, tc.want)
		}
	}
	// Other endpoints keep their 64 KiB body limit.
	req, _ := http.NewRequest("GET", s.url+"/key?id=t1", strings.NewReader(strings.Repeat("x", DefaultMaxBodyBytes+1)))
	req.Header.Set("Authorization", "Bearer "+migratorToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("GET /key with a body over 64 KiB: %d", resp.StatusCode)
	}
}

// FuzzDecodeRewrap: the decoder never panics, and what it accepts is a JSON object whose items
// encode back to a body it decodes to the same items.
func FuzzDecodeRewrap(f *testing.F) {
	for _, seed := range []string{
		`{"items":[]}`,
		`{"items":[{"key_id":"t1","label":"ssn","context":"dGVuYW50","ciphertext":"rkms:AQ"}]}`,
		`{"items":[{"key_id":"t1"},{"label":"x"}]}`,
		`{"items":[],"items":[]}`, `{"ITEMS":[]}`, `{"items":null}`, `{"items":[[[]]]}`, `[]`, ``, `{"items":[]} x`,
		`{"items":[{"context":"=="}]}`, `{"items":[{"key_id":"\u0074"}]}`, `{"items":[{"k\u0065y_id":"a","key_id":"b"}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		items, err := decodeRewrap(body)
		if err != nil {
			if items != nil {
				t.Fatal("items with an error")
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		again := rewrapRequest{Items: &[]rewrapItem{}}
		for _, it := range items {
			c := ""
			if len(it.Context) > 0 {
				c = base64.StdEncoding.EncodeToString(it.Context)
			}
			*again.Items = append(*again.Items, rewrapItem{KeyID: it.KeyID, Label: it.Label, Context: c, Ciphertext: it.Ciphertext})
		}
		enc, err := json.Marshal(again)
		if err != nil {
			t.Fatal(err)
		}
		back, err := decodeRewrap(enc)
		if err != nil || len(back) != len(items) {
			t.Fatalf("re-encoded %s: %v", enc, err)
		}
		for i := range back {
			if back[i].KeyID != items[i].KeyID || back[i].Label != items[i].Label || back[i].Ciphertext != items[i].Ciphertext ||
				!bytes.Equal(back[i].Context, items[i].Context) {
				t.Fatalf("item %d: %+v, then %+v", i, items[i], back[i])
			}
		}
	})
}
