package recorder

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

func TestRoutes(t *testing.T) {
	a := New()
	for _, tc := range []struct {
		method, target, body string
		wantStatus           int
		wantBody             string
	}{
		{"POST", "/patients", `{"ssn":"x", "n" : 1 }`, 201, `{"id":"1","ssn":"x", "n" : 1 }`},
		{"POST", "/patients", ` {} `, 201, `{"id":"2"}`},
		{"POST", "/patients", `[1]`, 400, `{"error":"body must be a JSON object"}`},
		{"POST", "/patients", `{"a":`, 400, `{"error":"body must be a JSON object"}`},
		{"GET", "/patients/1", "", 200, `{"id":"1","ssn":"x", "n" : 1 }`},
		{"GET", "/patients", "", 200, `{"items":[{"id":"1","ssn":"x", "n" : 1 },{"id":"2"}]}`},
		{"PUT", "/patients/2", `{"b":2}`, 200, `{"id":"2","b":2}`},
		{"GET", "/patients", "", 200, `{"items":[{"id":"1","ssn":"x", "n" : 1 },{"id":"2","b":2}]}`},
		{"DELETE", "/patients/1", "", 204, ``},
		{"DELETE", "/patients/1", "", 404, `{"error":"no such record"}`},
		{"GET", "/patients/1", "", 404, `{"error":"no such record"}`},
		{"GET", "/other", "", 200, `{"items":[]}`},
		{"GET", "/", "", 404, `{"error":"no such route"}`},
		{"GET", "/a/b/c", "", 404, `{"error":"no such route"}`},
		{"PATCH", "/patients/2", `{}`, 405, `{"error":"method not allowed"}`},
	} {
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.target, bytes.NewReader([]byte(tc.body))))
		if rec.Code != tc.wantStatus || rec.Body.String() != tc.wantBody {
			t.Errorf("%s %s: %d %s, want %d %s", tc.method, tc.target, rec.Code, rec.Body, tc.wantStatus, tc.wantBody)
		}
		if tc.wantStatus != 204 {
			if ct, cl := rec.Header().Get("Content-Type"), rec.Header().Get("Content-Length"); ct != "application/json" || cl != strconv.Itoa(rec.Body.Len()) {
				t.Errorf("%s %s: content-type %q content-length %q", tc.method, tc.target, ct, cl)
			}
		}
	}
	got := a.Received()
	if len(got) != 15 || string(got[0].Body) != `{"ssn":"x", "n" : 1 }` || got[0].Path != "/patients" {
		t.Errorf("received %d requests, first %+v", len(got), got[0])
	}
	a.Put("patients", "2", []byte(`{"tampered":true}`))
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("DELETE", "/%70atients/9?q=%41", bytes.NewReader([]byte("a=b")))
	req.Host = "app.example"
	a.ServeHTTP(rec, req)
	if got := a.Received(); got[len(got)-1].RawURI != "/%70atients/9?q=%41" || got[len(got)-1].Host != "app.example" ||
		got[len(got)-1].Method != "DELETE" || string(got[len(got)-1].Body) != "a=b" {
		t.Errorf("received %+v, want the raw target, host, method and body", got[len(got)-1])
	}
	if r, ok := a.Record("patients", "2"); !ok || string(r) != `{"tampered":true}` {
		t.Errorf("Put/Record: %s %v", r, ok)
	}
}

func TestGzip(t *testing.T) {
	a := New()
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, httptest.NewRequest("GET", "/x?encoding=gzip", nil))
	if rec.Header().Get("Content-Encoding") != "gzip" {
		t.Fatal("not compressed")
	}
	zr, err := gzip.NewReader(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(zr)
	if string(b) != `{"items":[]}` {
		t.Errorf("decompressed %s", b)
	}
}

func TestTooLarge(t *testing.T) {
	rec := httptest.NewRecorder()
	New().ServeHTTP(rec, httptest.NewRequest("POST", "/x", bytes.NewReader(make([]byte, MaxBody+1))))
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d", rec.Code)
	}
}

// TestImportExportPages: a database load (NDJSON import), one page of a list, and the NDJSON
// export, as the migration test uses them.
func TestImportExportPages(t *testing.T) {
	a := New()
	for _, tc := range []struct {
		method, target, body string
		wantStatus           int
		wantBody             string
	}{
		{"POST", "/p/_import", "{\"id\":\"a\",\"v\":1}\r\n\n{\"id\":\"b\", \"v\":2}\n{\"id\":\"c\"}", 200, `{"imported":3}`},
		{"POST", "/p/_import", "{\"id\":\"d\"}\n[1]", 400, `{"error":"line 2: not a JSON object with a string id"}`},
		{"POST", "/p/_import", "{\"v\":1}", 400, `{"error":"line 1: not a JSON object with a string id"}`},
		{"POST", "/p/_import", "{\"id\":7}", 400, `{"error":"line 1: not a JSON object with a string id"}`},
		{"GET", "/p?offset=1&limit=1", "", 200, `{"items":[{"id":"b", "v":2}]}`},
		{"GET", "/p?offset=2", "", 200, `{"items":[{"id":"c"}]}`},
		{"GET", "/p?limit=0", "", 200, `{"items":[]}`},
		{"GET", "/p?offset=9&limit=5", "", 200, `{"items":[]}`},
		{"GET", "/p?limit=-1", "", 400, `{"error":"offset and limit must be non-negative integers"}`},
		{"GET", "/p?limit=1&limit=2", "", 400, `{"error":"offset and limit must be non-negative integers"}`},
		{"GET", "/p?id=c&limit=5", "", 200, `{"items":[{"id":"c"}]}`},
	} {
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.target, bytes.NewReader([]byte(tc.body))))
		if rec.Code != tc.wantStatus || rec.Body.String() != tc.wantBody {
			t.Errorf("%s %s: %d %s, want %d %s", tc.method, tc.target, rec.Code, rec.Body, tc.wantStatus, tc.wantBody)
		}
	}
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, httptest.NewRequest("GET", "/p/_export", nil))
	want := "{\"id\":\"a\",\"v\":1}\n{\"id\":\"b\", \"v\":2}\n{\"id\":\"c\"}\n"
	if rec.Code != 200 || rec.Body.String() != want || rec.Header().Get("Content-Type") != "application/x-ndjson" {
		t.Errorf("export: %d %q %q, want %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body, want)
	}
}

// TestBounded: a bounded app keeps at most maxRecords per collection (the oldest go first) and
// no log of requests.
func TestBounded(t *testing.T) {
	a := NewBounded(2)
	for i := range 4 {
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, httptest.NewRequest("POST", "/w", bytes.NewReader([]byte(`{"n":`+strconv.Itoa(i)+`}`))))
		if rec.Code != 201 {
			t.Fatalf("POST %d: %d %s", i, rec.Code, rec.Body)
		}
	}
	for id, want := range map[string]bool{"1": false, "2": false, "3": true, "4": true} {
		if _, ok := a.Record("w", id); ok != want {
			t.Errorf("record %s kept = %v, want %v", id, ok, want)
		}
	}
	if n := len(a.Received()); n != 0 {
		t.Errorf("bounded app logged %d requests", n)
	}
}
