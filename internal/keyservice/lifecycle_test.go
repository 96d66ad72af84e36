package keyservice

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/rkms/rkms/internal/access"
	"github.com/rkms/rkms/internal/audit"
	"github.com/rkms/rkms/keyring/keyringtest"
)

// lifecycleSession returns a session over a fake with "live" at version 3 and "gone" deleted,
// and the buffer its audit records go to.
func lifecycleSession(t *testing.T) (*Session, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	f := keyringtest.NewFake()
	f.Put("live", 3)
	f.Put("gone", 1)
	if err := f.Delete(context.Background(), "gone"); err != nil {
		t.Fatal(err)
	}
	s, err := New(f, Options{Token: token, Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := s.Authenticate(context.Background(), Caller{API: audit.APIHTTP, Authorization: "Bearer " + token}, audit.OpRead, "")
	if err != nil {
		t.Fatal(err)
	}
	return sess, &buf
}

// lastAudit returns the last audit record written to buf.
func lastAudit(buf *bytes.Buffer) string {
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	return lines[len(lines)-1]
}

// TestLifecycle: each explicit operation's outcome, class and audit record (op and result).
func TestLifecycle(t *testing.T) {
	read := func(version uint32) func(*Session, string) (uint32, error) {
		return func(ss *Session, id string) (uint32, error) {
			var got uint32
			err := ss.Read(context.Background(), id, version, func(_ string, v uint32, _ []byte) { got = v })
			return got, err
		}
	}
	create := func(recreate bool) func(*Session, string) (uint32, error) {
		return func(ss *Session, id string) (uint32, error) {
			var got uint32
			err := ss.Create(context.Background(), id, recreate, func(_ string, v uint32, _ []byte) { got = v })
			return got, err
		}
	}
	get := func(ss *Session, id string) (uint32, error) {
		var got uint32
		err := ss.Get(context.Background(), id, func(_ string, v uint32, _ []byte) { got = v })
		return got, err
	}
	const ok Class = -1
	tests := []struct {
		name      string
		call      func(*Session, string) (uint32, error)
		id        string
		want      Class // ok: success
		version   uint32
		op, audit string
	}{
		{"read-current", read(0), "live", ok, 3, "read", "ok"},
		{"read-version", read(2), "live", ok, 2, "read", "ok"},
		{"read-missing-version", read(4), "live", NotFound, 0, "read", "not_found"},
		{"read-absent", read(0), "nope", NotFound, 0, "read", "not_found"},
		{"read-deleted", read(0), "gone", Deleted, 0, "read", "deleted"},
		{"read-bad-id", read(0), "a b", InvalidArgument, 0, "read", "invalid"},
		{"create", create(false), "new", ok, 1, "create", "ok"},
		{"create-existing", create(false), "live", Exists, 0, "create", "exists"},
		{"create-deleted", create(false), "gone", Deleted, 0, "create", "deleted"},
		{"recreate-deleted", create(true), "gone", ok, 1, "create", "ok"},
		{"get-deleted", get, "gone", Deleted, 0, "read", "deleted"},
		{"get-creates", get, "fresh", ok, 1, "read", "ok"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ss, buf := lifecycleSession(t)
			v, err := tc.call(ss, tc.id)
			switch {
			case tc.want == ok && (err != nil || v != tc.version):
				t.Fatalf("= version %d, %v; want version %d", v, err, tc.version)
			case tc.want != ok && Classify(err).Class != tc.want:
				t.Fatalf("= %v, want class %v", err, tc.want)
			}
			rec := lastAudit(buf)
			if !strings.Contains(rec, `"op":"`+tc.op+`"`) || !strings.Contains(rec, `"result":"`+tc.audit+`"`) {
				t.Fatalf("audit record %s, want op %s result %s", rec, tc.op, tc.audit)
			}
		})
	}
}

func TestList(t *testing.T) {
	ss, buf := lifecycleSession(t)
	ctx := context.Background()
	var ids, dels []string
	req := ListRequest{Limit: 1}
	for range 10 {
		res, err := ss.List(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		ids, dels = append(ids, res.IDs...), append(dels, res.Deleted...)
		if res.Next == "" {
			break
		}
		if strings.ContainsAny(res.Next, "+/=%") {
			t.Fatalf("cursor %q is not URL-safe", res.Next)
		}
		req.Cursor = res.Next
	}
	if !slices.Equal(ids, []string{"live"}) || !slices.Equal(dels, []string{"gone"}) {
		t.Fatalf("List: ids %v, deleted %v", ids, dels)
	}
	if rec := lastAudit(buf); !strings.Contains(rec, `"op":"list"`) || !strings.Contains(rec, `"result":"ok"`) {
		t.Fatalf("audit: %s", rec)
	}
	tests := []struct {
		name string
		req  ListRequest
		msg  string
	}{
		{"bad-cursor", ListRequest{Cursor: "not base64!"}, "invalid cursor"},
		{"negative-limit", ListRequest{Limit: -1}, "invalid limit"},
		{"limit-over-max", ListRequest{Limit: MaxListLimit + 1}, "invalid limit"},
		{"bad-prefix", ListRequest{Prefix: "a b"}, "invalid prefix"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ss.List(ctx, tc.req)
			if e := Classify(err); e.Class != InvalidArgument || !strings.HasPrefix(e.Msg, tc.msg) {
				t.Fatalf("List(%+v) = %v, want invalid argument %q", tc.req, err, tc.msg)
			}
			if rec := lastAudit(buf); !strings.Contains(rec, `"op":"list"`) || !strings.Contains(rec, `"result":"invalid"`) {
				t.Fatalf("audit: %s", rec)
			}
		})
	}
}

// TestListPermissions: listing needs the list permission; a credential with id prefixes sees
// only the ids it covers, and a prefix outside them is refused (403 class).
func TestListPermissions(t *testing.T) {
	f := keyringtest.NewFake()
	for _, id := range []string{"tenant-a", "tenant-b", "other"} {
		f.Put(id, 1)
	}
	creds := []Credential{
		{Principal: access.Principal{Name: "lister", Allow: []string{access.List}, IDPrefixes: []string{"tenant-"}}, Token: "lister-token-0123456789"},
		{Principal: access.Principal{Name: "reader", Allow: []string{access.Read}}, Token: "reader-token-0123456789"},
	}
	s, err := New(f, Options{Credentials: creds, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	session := func(tok string) *Session {
		ss, err := s.Authenticate(ctx, Caller{API: audit.APIHTTP, Authorization: "Bearer " + tok}, audit.OpList, "")
		if err != nil {
			t.Fatal(err)
		}
		return ss
	}
	lister := session("lister-token-0123456789")
	res, err := lister.List(ctx, ListRequest{})
	if err != nil || !slices.Equal(res.IDs, []string{"tenant-a", "tenant-b"}) {
		t.Errorf("list by a tenant- credential: %v, %v; want only tenant-a, tenant-b", res.IDs, err)
	}
	var e *Error
	if _, err := lister.List(ctx, ListRequest{Prefix: "oth"}); !errors.As(err, &e) || e.Class != Forbidden {
		t.Errorf("prefix outside the credential: %v, want Forbidden", err)
	}
	if _, err := session("reader-token-0123456789").List(ctx, ListRequest{}); !errors.As(err, &e) || e.Class != Forbidden {
		t.Errorf("list without the permission: %v, want Forbidden", err)
	}
}

// TestGetDeletedWithoutCreate: a credential without the create permission that gets a deleted
// id is told Deleted (410), like one with it, not Forbidden: nothing would be created.
func TestGetDeletedWithoutCreate(t *testing.T) {
	f := keyringtest.NewFake()
	f.Put("gone", 1)
	if err := f.Delete(context.Background(), "gone"); err != nil {
		t.Fatal(err)
	}
	creds := []Credential{{Principal: access.Principal{Name: "reader", Allow: []string{access.Read}}, Token: "reader-token-0123456789"}}
	s, err := New(f, Options{Credentials: creds, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ss, err := s.Authenticate(context.Background(), Caller{API: audit.APIHTTP, Authorization: "Bearer reader-token-0123456789"}, audit.OpRead, "gone")
	if err != nil {
		t.Fatal(err)
	}
	var e *Error
	if err := ss.Get(context.Background(), "gone", func(string, uint32, []byte) {}); !errors.As(err, &e) || e.Class != Deleted {
		t.Fatalf("get of a deleted id without create: %v, want Deleted", err)
	}
}
