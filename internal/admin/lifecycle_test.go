package admin

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/rkms/rkms/internal/keyservice"
	"github.com/rkms/rkms/keyring/keyringtest"
)

// lifecycleHandler serves a fake with "live" at version 3 and "gone" deleted.
func lifecycleHandler(t *testing.T) (*Handler, *keyringtest.Fake) {
	t.Helper()
	f := keyringtest.NewFake()
	f.Put("live", 3)
	f.Put("gone", 1)
	if err := f.Delete(context.Background(), "gone"); err != nil {
		t.Fatal(err)
	}
	h, err := newHandler(f, keyservice.Options{Token: token}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return h, f
}

func do(h *Handler, method, target string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// TestLifecycleStatuses: every explicit key call and its status; the read-only forms never
// create, and a deleted id comes back only through POST with recreate=true.
func TestLifecycleStatuses(t *testing.T) {
	tests := []struct {
		name, method, target string
		wantStatus           int
		wantVersion          uint32
		wantError            string
		created              string // an id that must exist afterwards ("" : none checked)
		absent               string // an id that must still be absent afterwards
	}{
		{"read-only current", "GET", "/key?id=live&create=false", 200, 3, "", "", ""},
		{"read-only absent", "GET", "/key?id=typo&create=false", 404, 0, "not found", "", "typo"},
		{"read-only deleted", "GET", "/key?id=gone&create=false", 410, 0, "deleted", "", ""},
		{"by version", "GET", "/key?id=live&version=2", 200, 2, "", "", ""},
		{"by version create=false", "GET", "/key?id=live&version=1&create=false", 200, 1, "", "", ""},
		{"by version absent", "GET", "/key?id=typo&version=1", 404, 0, "not found", "", "typo"},
		{"by version missing", "GET", "/key?id=live&version=4", 404, 0, "not found", "", ""},
		{"version 0", "GET", "/key?id=live&version=0", 400, 0, "version", "", ""},
		{"version with create=true", "GET", "/key?id=live&version=1&create=true", 400, 0, "never creates", "", ""},
		{"create=maybe", "GET", "/key?id=live&create=maybe", 400, 0, "true or false", "", ""},
		{"get creates (compatible)", "GET", "/key?id=fresh", 200, 1, "", "fresh", ""},
		{"get deleted", "GET", "/key?id=gone", 410, 0, "deleted", "", ""},
		{"create", "POST", "/key?id=new", 201, 1, "", "new", ""},
		{"create existing", "POST", "/key?id=live", 409, 0, "already exists", "", ""},
		{"create deleted", "POST", "/key?id=gone", 410, 0, "recreate", "", ""},
		{"recreate deleted", "POST", "/key?id=gone&recreate=true", 201, 1, "", "gone", ""},
		{"create without id", "POST", "/key", 400, 0, "id", "", ""},
		{"delete deleted", "DELETE", "/key?id=gone", 410, 0, "deleted", "", ""},
		{"rotate deleted", "POST", "/key/rotate?id=gone", 410, 0, "deleted", "", ""},
		{"list wrong method", "POST", "/keys", 405, 0, "method", "", ""},
		{"list bad limit", "GET", "/keys?limit=0", 400, 0, "limit", "", ""},
		{"list bad cursor", "GET", "/keys?after=%21", 400, 0, "cursor", "", ""},
		{"list takes no id", "GET", "/keys?id=a", 400, 0, `unknown query parameter "id"`, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, f := lifecycleHandler(t)
			rec := do(h, tc.method, tc.target)
			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.wantStatus, rec.Body)
			}
			var body struct {
				Version uint32 `json:"version"`
				Key     string `json:"key"`
				Error   string `json:"error"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %s: %v", rec.Body, err)
			}
			if body.Version != tc.wantVersion || !strings.Contains(body.Error, tc.wantError) {
				t.Fatalf("body %s, want version %d, error containing %q", rec.Body, tc.wantVersion, tc.wantError)
			}
			if rec.Code < 300 && body.Key == "" {
				t.Fatalf("no key in %s", rec.Body)
			}
			if tc.created != "" {
				if _, err := f.Lookup(context.Background(), tc.created); err != nil {
					t.Fatalf("%q not created: %v", tc.created, err)
				}
			}
			if tc.absent != "" {
				if _, err := f.Lookup(context.Background(), tc.absent); err == nil {
					t.Fatalf("%q was created", tc.absent)
				}
			}
		})
	}
}

func TestListPaging(t *testing.T) {
	h, f := lifecycleHandler(t)
	for _, id := range []string{"t/a+1", "t/b", "t/c", "u"} {
		f.Put(id, 1)
	}
	for _, path := range []string{"/keys", "/api/v1/keys"} {
		t.Run(path, func(t *testing.T) {
			var ids []string
			target := path + "?prefix=t/&limit=2"
			for pages := 0; ; pages++ {
				rec := do(h, "GET", target)
				if rec.Code != 200 {
					t.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
				var page listResponse
				if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil || page.IDs == nil || page.Deleted == nil {
					t.Fatalf("page %s: %v", rec.Body, err)
				}
				ids = append(ids, page.IDs...)
				if page.Next == "" {
					break
				}
				if pages > 5 {
					t.Fatal("listing does not end")
				}
				target = path + "?prefix=t/&limit=2&after=" + page.Next
			}
			if !slices.Equal(ids, []string{"t/a+1", "t/b", "t/c"}) {
				t.Fatalf("ids %v", ids)
			}
		})
	}
	rec := do(h, "GET", "/keys")
	var page listResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil || !slices.Equal(page.Deleted, []string{"gone"}) || page.Next != "" {
		t.Fatalf("whole listing %s: %v", rec.Body, err)
	}
}

// TestReserveSealsStatuses: POST /key/seals's parameters and answers (the fake counts no
// seals: it grants what was asked, counted false; keyservice's TestReserveSeals has the counting
// cases and internal/app's TestSealCountsSeals the real keyring through rkms seal --server).
func TestReserveSealsStatuses(t *testing.T) {
	tests := []struct {
		name, method, target string
		wantStatus           int
		want                 string // in the body
	}{
		{"granted", "POST", "/key/seals?id=live&version=3&count=500", 200, `"reserved":500,"limit":false,"counted":false`},
		{"old version", "POST", "/key/seals?id=live&version=2&count=5", 200, `"reserved":0,"limit":true`},
		{"above current", "POST", "/key/seals?id=live&version=4&count=5", 400, "above the key's current version"},
		{"absent", "POST", "/key/seals?id=typo&version=1&count=5", 404, "not found"},
		{"deleted", "POST", "/key/seals?id=gone&version=1&count=5", 410, "deleted"},
		{"no count", "POST", "/key/seals?id=live&version=3", 400, "count"},
		{"no version", "POST", "/key/seals?id=live&count=3", 400, "version"},
		{"count 0", "POST", "/key/seals?id=live&version=3&count=0", 400, "count"},
		{"count too large", "POST", "/key/seals?id=live&version=3&count=1000001", 400, "count"},
		{"GET", "GET", "/key/seals?id=live&version=3&count=1", 405, "method"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := lifecycleHandler(t)
			rec := do(h, tc.method, tc.target)
			if rec.Code != tc.wantStatus || !strings.Contains(rec.Body.String(), tc.want) {
				t.Fatalf("%d %s, want %d with %q", rec.Code, rec.Body, tc.wantStatus, tc.want)
			}
		})
	}
}
