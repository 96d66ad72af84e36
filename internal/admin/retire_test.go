package admin

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rkms/rkms/internal/keyservice"
	"github.com/rkms/rkms/keyring"
	"github.com/rkms/rkms/keyring/localkms"
	"github.com/rkms/rkms/store"
)

// realKeyring is a keyring over a memory store and two software KMS regions.
func realKeyring(t *testing.T) *keyring.Keyring {
	t.Helper()
	var regions []keyring.Region
	for _, name := range []string{"a", "b"} {
		r, err := localkms.Open(filepath.Join(t.TempDir(), "kms"), name, nil)
		if err != nil {
			t.Fatal(err)
		}
		regions = append(regions, r)
	}
	k, err := keyring.New(store.NewMemory(), regions, keyring.Options{MaxSeals: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

// TestVersionLifecycleEndpoints: min decrypt version retires older versions (410 on read, shown
// in the metadata), maintain answers, the read-only credential is refused the lifecycle calls
// with 403, and every call is audited.
func TestVersionLifecycleEndpoints(t *testing.T) {
	k := realKeyring(t)
	var logs bytes.Buffer
	h, err := newHandler(k, keyservice.Options{Token: token, Credentials: credentials,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil))}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, target, auth string, want int) []byte {
		t.Helper()
		req := httptest.NewRequest(method, target, nil)
		req.Header.Set("Authorization", "Bearer "+auth)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Fatalf("%s %s: %d %s, want %d", method, target, rec.Code, rec.Body, want)
		}
		return rec.Body.Bytes()
	}
	do("POST", "/key?id=tenant-a", token, 201)
	do("POST", "/key/rotate?id=tenant-a", token, 200)
	do("POST", "/key/rotate?id=tenant-a", token, 200)

	var md keyMetadata
	if err := json.Unmarshal(do("POST", "/key/min-decrypt-version?id=tenant-a&version=3", token, 200), &md); err != nil {
		t.Fatal(err)
	}
	if md.MinDecryptVersion != 3 || md.Current != 3 || len(md.Versions) != 3 || md.Versions[0].Retired == nil ||
		md.Versions[0].DestroyAfter == nil || md.Versions[2].Retired != nil || md.MaxSeals != 1<<30 {
		t.Fatalf("metadata after retiring: %+v", md)
	}
	if body := do("GET", "/key?id=tenant-a&version=1", token, 410); !strings.Contains(string(body), "retired") {
		t.Fatalf("read of a retired version: %s", body)
	}
	var kr keyResponse
	if err := json.Unmarshal(do("GET", "/key?id=tenant-a&metadata=true", token, 200), &kr); err != nil {
		t.Fatal(err)
	}
	if kr.Version != 3 || kr.Key == "" || kr.Metadata == nil || kr.Metadata.MinDecryptVersion != 3 {
		t.Fatalf("GET /key with metadata: %+v", kr)
	}
	if body := do("GET", "/key/metadata?id=tenant-a", readerToken, 200); strings.Contains(string(body), `"key"`) {
		t.Fatalf("metadata holds key material: %s", body)
	}
	var mr maintainResponse
	if err := json.Unmarshal(do("POST", "/key/maintain?id=tenant-a", token, 200), &mr); err != nil {
		t.Fatal(err)
	}
	if mr.Rotated != 0 || len(mr.Destroyed) != 0 || mr.Metadata == nil {
		t.Fatalf("maintain within the grace: %+v", mr)
	}
	do("POST", "/key/min-decrypt-version?id=tenant-a&version=4", token, 400)
	do("POST", "/key/min-decrypt-version?id=tenant-a", token, 400)
	do("POST", "/key/min-decrypt-version?id=tenant-a&version=1", readerToken, 403)
	do("POST", "/key/maintain?id=tenant-a", readerToken, 403)
	do("POST", "/key/min-decrypt-version?id=absent&version=1", token, 404)
	// Lowering the minimum opens version 1 again (not destroyed yet).
	do("POST", "/key/min-decrypt-version?id=tenant-a&version=0", token, 200)
	do("GET", "/key?id=tenant-a&version=1", token, 200)

	for _, want := range []string{
		`"op":"set_min_decrypt_version","key_id":"tenant-a","version":3,"result":"ok"`,
		`"op":"set_min_decrypt_version","key_id":"tenant-a","result":"denied","remote":"192.0.2.1:1234","principal":"reader"`,
		`"op":"maintain","key_id":"tenant-a","result":"ok"`,
		`"op":"read","key_id":"tenant-a","version":1,"result":"retired"`,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no audit record with %s in\n%s", want, logs.String())
		}
	}
}
