package keyservice

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"testing"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/internal/access"
	"github.com/rkms/rkms/internal/audit"
	"github.com/rkms/rkms/keyring"
	"github.com/rkms/rkms/keyring/keyringtest"
	"github.com/rkms/rkms/secret"
)

// versionedKeys is the fake keyring with distinct bytes per version (the fake gives every
// version the same bytes) and version 0 refused as the keyring refuses it; it counts lookups.
type versionedKeys struct {
	*keyringtest.Fake
	mu       sync.Mutex
	lookups  map[string]int // by id
	versions map[string]int // by "id/v"
}

func newVersionedKeys() *versionedKeys {
	return &versionedKeys{Fake: keyringtest.NewFake(), lookups: map[string]int{}, versions: map[string]int{}}
}

func versionBytes(id string, v uint32) []byte {
	b := sha256.Sum256(fmt.Appendf(nil, "%s/%d", id, v))
	return b[:]
}

func (k *versionedKeys) Lookup(ctx context.Context, id string) (keyring.DataKey, error) {
	k.mu.Lock()
	k.lookups[id]++
	k.mu.Unlock()
	dk, err := k.Fake.Lookup(ctx, id)
	if err != nil {
		return dk, err
	}
	return keyring.DataKey{ID: id, Version: dk.Version, Secret: secret.New(versionBytes(id, dk.Version))}, nil
}

func (k *versionedKeys) GetVersion(ctx context.Context, id string, v uint32) (keyring.DataKey, error) {
	k.mu.Lock()
	k.versions[fmt.Sprintf("%s/%d", id, v)]++
	k.mu.Unlock()
	if v == 0 {
		return keyring.DataKey{}, fmt.Errorf("key %q version 0: %w", id, keyring.ErrNotFound)
	}
	dk, err := k.Fake.GetVersion(ctx, id, v)
	if err != nil {
		return dk, err
	}
	return keyring.DataKey{ID: id, Version: v, Secret: secret.New(versionBytes(id, v))}, nil
}

// seal seals pt as version v of id would, for the tests' inputs.
func seal(t testing.TB, id string, v uint32, mode envelope.Mode, label string, ctx []byte, pt string) string {
	t.Helper()
	out, err := envelope.Seal(nil, envelope.Key{ID: id, Version: v, Secret: secret.New(versionBytes(id, v))}, mode, label, ctx, []byte(pt))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// open opens text as version v of id, for the tests' checks.
func open(id string, v uint32, label string, ctx []byte, text string) (string, error) {
	pt, err := envelope.Open(nil, envelope.Key{ID: id, Version: v, Secret: secret.New(versionBytes(id, v))}, label, ctx, []byte(text))
	return string(pt), err
}

// rewrapRig is a key service over versionedKeys with t1 at version 3, t2 at 1, tenant-a at 2
// and gone deleted, with credentials of several rights, and its audit log.
type rewrapRig struct {
	keys  *versionedKeys
	svc   *Service
	audit *bytes.Buffer
	items map[string]int // OnRewrap's counts by result
}

const (
	migratorToken = "migrator-token-0123456789"
	tenantToken   = "tenant-token-0123456789ab"
	readOnlyToken = "readonly-token-0123456789"
)

func newRewrapRig(t *testing.T) *rewrapRig {
	t.Helper()
	k := newVersionedKeys()
	k.Put("t1", 3)
	k.Put("t2", 1)
	k.Put("tenant-a", 2)
	k.Put("gone", 1)
	if err := k.Delete(context.Background(), "gone"); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	counts := map[string]int{}
	svc, err := New(k, Options{Logger: slog.New(slog.NewJSONHandler(&buf, nil)), OnRewrap: func(result string, n int) { counts[result] += n }, Credentials: []Credential{
		{Principal: access.Principal{Name: "migrator", Allow: []string{access.Rewrap}}, Token: migratorToken},
		{Principal: access.Principal{Name: "tenant-mig", Allow: []string{access.Rewrap}, IDPrefixes: []string{"tenant-"}}, Token: tenantToken},
		{Principal: access.Principal{Name: "reader", Allow: []string{access.Read, access.List}}, Token: readOnlyToken},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return &rewrapRig{keys: k, svc: svc, audit: &buf, items: counts}
}

func (r *rewrapRig) session(t *testing.T, token string) *Session {
	t.Helper()
	sess, err := r.svc.Authenticate(context.Background(), Caller{API: audit.APIHTTP, Remote: "192.0.2.9:1", Authorization: "Bearer " + token}, audit.OpRewrap, "")
	if err != nil {
		t.Fatal(err)
	}
	return sess
}

// records returns the audit records written so far.
func (r *rewrapRig) records(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(r.audit.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

const secretValue = `"123-45-6789"`

// TestRewrap: one item per case through a credential that may rewrap everything.
func TestRewrap(t *testing.T) {
	tctx := []byte("tenant=acme")
	type want struct {
		class     Class // with msg: an error
		msg       string
		version   uint32
		rewrapped bool
		same      bool // ciphertext returned unchanged
	}
	tests := []struct {
		name string
		item func(t *testing.T) RewrapItem
		want want
		// gets are the GetVersion calls the item may make ("id/v"); nil: none
		gets []string
	}{
		{"current version unchanged", func(t *testing.T) RewrapItem {
			return RewrapItem{KeyID: "t1", Label: "ssn", Context: tctx, Ciphertext: seal(t, "t1", 3, envelope.Randomized, "ssn", tctx, secretValue)}
		}, want{version: 3, same: true}, nil},
		{"newer than current unchanged", func(t *testing.T) RewrapItem {
			return RewrapItem{KeyID: "t1", Label: "ssn", Ciphertext: seal(t, "t1", 9, envelope.Randomized, "ssn", nil, secretValue)}
		}, want{version: 9, same: true}, nil},
		{"old version rewrapped", func(t *testing.T) RewrapItem {
			return RewrapItem{KeyID: "t1", Label: "ssn", Context: tctx, Ciphertext: seal(t, "t1", 1, envelope.Randomized, "ssn", tctx, secretValue)}
		}, want{version: 3, rewrapped: true}, []string{"t1/1"}},
		{"deterministic rewrapped", func(t *testing.T) RewrapItem {
			return RewrapItem{KeyID: "t1", Label: "email", Ciphertext: seal(t, "t1", 2, envelope.Deterministic, "email", nil, `"a@example.com"`)}
		}, want{version: 3, rewrapped: true}, []string{"t1/2"}},
		{"wrong label", func(t *testing.T) RewrapItem {
			return RewrapItem{KeyID: "t1", Label: "email", Context: tctx, Ciphertext: seal(t, "t1", 1, envelope.Randomized, "ssn", tctx, secretValue)}
		}, want{class: AuthenticationFailed, msg: "authentication failed"}, []string{"t1/1"}},
		{"wrong context", func(t *testing.T) RewrapItem {
			return RewrapItem{KeyID: "t1", Label: "ssn", Context: []byte("tenant=other"), Ciphertext: seal(t, "t1", 1, envelope.Randomized, "ssn", tctx, secretValue)}
		}, want{class: AuthenticationFailed, msg: "authentication failed"}, []string{"t1/1"}},
		{"header names another key id", func(t *testing.T) RewrapItem {
			return RewrapItem{KeyID: "t1", Label: "ssn", Ciphertext: seal(t, "t2", 1, envelope.Randomized, "ssn", nil, secretValue)}
		}, want{class: InvalidArgument, msg: msgOtherKey}, nil},
		{"malformed", func(t *testing.T) RewrapItem {
			return RewrapItem{KeyID: "t1", Label: "ssn", Ciphertext: "rkms:AQ!!"}
		}, want{class: InvalidArgument, msg: msgMalformed}, nil},
		{"not a ciphertext", func(t *testing.T) RewrapItem {
			return RewrapItem{KeyID: "t1", Label: "ssn", Ciphertext: secretValue}
		}, want{class: InvalidArgument, msg: msgMalformed}, nil},
		{"unsupported format version", func(t *testing.T) RewrapItem {
			bin, err := base64.RawURLEncoding.DecodeString(seal(t, "t1", 1, envelope.Randomized, "ssn", nil, secretValue)[len(envelope.Prefix):])
			if err != nil {
				t.Fatal(err)
			}
			bin[0] = 2 // format version 2
			return RewrapItem{KeyID: "t1", Label: "ssn", Ciphertext: envelope.Prefix + base64.RawURLEncoding.EncodeToString(bin)}
		}, want{class: InvalidArgument, msg: msgUnsupported}, nil},
		{"too long", func(t *testing.T) RewrapItem {
			return RewrapItem{KeyID: "t1", Label: "ssn", Ciphertext: "rkms:" + strings.Repeat("A", MaxRewrapCiphertextLen)}
		}, want{class: InvalidArgument, msg: msgMalformed}, nil},
		{"empty label", func(t *testing.T) RewrapItem {
			return RewrapItem{KeyID: "t1", Ciphertext: seal(t, "t1", 1, envelope.Randomized, "ssn", nil, secretValue)}
		}, want{class: InvalidArgument, msg: msgLabel}, nil},
		{"context too long", func(t *testing.T) RewrapItem {
			return RewrapItem{KeyID: "t1", Label: "ssn", Context: make([]byte, envelope.MaxContextLen+1), Ciphertext: seal(t, "t1", 1, envelope.Randomized, "ssn", nil, secretValue)}
		}, want{class: InvalidArgument, msg: msgContext}, nil},
		{"invalid key id", func(t *testing.T) RewrapItem {
			return RewrapItem{KeyID: "t 1", Label: "ssn", Ciphertext: seal(t, "t1", 1, envelope.Randomized, "ssn", nil, secretValue)}
		}, want{class: InvalidArgument, msg: msgIDRule}, nil},
		{"unknown id", func(t *testing.T) RewrapItem {
			return RewrapItem{KeyID: "nobody", Label: "ssn", Ciphertext: seal(t, "nobody", 1, envelope.Randomized, "ssn", nil, secretValue)}
		}, want{class: NotFound, msg: msgNotFound}, nil},
		{"deleted id", func(t *testing.T) RewrapItem {
			return RewrapItem{KeyID: "gone", Label: "ssn", Ciphertext: seal(t, "gone", 1, envelope.Randomized, "ssn", nil, secretValue)}
		}, want{class: Deleted, msg: msgDeleted}, nil},
		{"version 0", func(t *testing.T) RewrapItem {
			return RewrapItem{KeyID: "t1", Label: "ssn", Ciphertext: seal(t, "t1", 0, envelope.Randomized, "ssn", nil, secretValue)}
		}, want{class: NotFound, msg: msgVersion}, []string{"t1/0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRewrapRig(t)
			it := tc.item(t)
			res, err := r.session(t, migratorToken).Rewrap(context.Background(), []RewrapItem{it})
			if err != nil || len(res) != 1 {
				t.Fatalf("Rewrap: %v, %d results", err, len(res))
			}
			got := res[0]
			if tc.want.msg != "" {
				if got.Err == nil || got.Err.Class != tc.want.class || got.Err.Msg != tc.want.msg || got.Ciphertext != "" {
					t.Fatalf("result %+v (err %v), want %v %q", got, got.Err, tc.want.class, tc.want.msg)
				}
				if strings.Contains(got.Err.Error(), secretValue) || strings.Contains(got.Err.Error(), it.Ciphertext) {
					t.Fatalf("the error carries the value or the ciphertext: %v", got.Err)
				}
			} else if got.Err != nil || got.Version != tc.want.version || got.Rewrapped != tc.want.rewrapped || (got.Ciphertext == it.Ciphertext) != tc.want.same {
				t.Fatalf("result %+v (err %v), want %+v", got, got.Err, tc.want)
			}
			if got.Rewrapped {
				checkRewrapped(t, it, got)
			}
			r.keys.mu.Lock()
			gets := r.keys.versions
			r.keys.mu.Unlock()
			if len(gets) != len(tc.gets) {
				t.Errorf("GetVersion calls %v, want %v", gets, tc.gets)
			}
			for _, g := range tc.gets {
				if gets[g] != 1 {
					t.Errorf("GetVersion calls %v, want %v once each", gets, tc.gets)
				}
			}
		})
	}
}

// checkRewrapped: the new ciphertext names the item's key id, the current version and the old
// mode, opens under it with the item's label and context to the old value, and not with
// another label.
func checkRewrapped(t *testing.T, it RewrapItem, got RewrapResult) {
	t.Helper()
	oldH, _ := envelope.Parse([]byte(it.Ciphertext))
	h, err := envelope.Parse([]byte(got.Ciphertext))
	if err != nil || h.KeyID != it.KeyID || h.KeyVersion != got.Version || h.Mode != oldH.Mode {
		t.Fatalf("new header %+v (%v), want %s version %d mode %v", h, err, it.KeyID, got.Version, oldH.Mode)
	}
	want, err := open(it.KeyID, oldH.KeyVersion, it.Label, it.Context, it.Ciphertext)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := open(it.KeyID, got.Version, it.Label, it.Context, got.Ciphertext); err != nil || pt != want {
		t.Fatalf("the rewrapped ciphertext opens to %q, %v; want %q", pt, err, want)
	}
	if _, err := open(it.KeyID, got.Version, it.Label+"x", it.Context, got.Ciphertext); err == nil {
		t.Fatal("the rewrapped ciphertext opens under another label")
	}
}

// TestRewrapDeterministic: equal deterministic inputs under an old version give equal outputs
// under the new one, still deterministic, equal to a fresh seal under the new version (so
// equality lookups keep working), and unequal to a different value's.
func TestRewrapDeterministic(t *testing.T) {
	r := newRewrapRig(t)
	a := seal(t, "t1", 1, envelope.Deterministic, "email", []byte("c"), `"a@example.com"`)
	b := seal(t, "t1", 2, envelope.Deterministic, "email", []byte("c"), `"a@example.com"`)
	c := seal(t, "t1", 1, envelope.Deterministic, "email", []byte("c"), `"b@example.com"`)
	items := []RewrapItem{{"t1", "email", []byte("c"), a}, {"t1", "email", []byte("c"), b}, {"t1", "email", []byte("c"), c}}
	res, err := r.session(t, migratorToken).Rewrap(context.Background(), items)
	if err != nil {
		t.Fatal(err)
	}
	for i, got := range res {
		if got.Err != nil || !got.Rewrapped || got.Version != 3 {
			t.Fatalf("item %d: %+v", i, got)
		}
	}
	fresh := seal(t, "t1", 3, envelope.Deterministic, "email", []byte("c"), `"a@example.com"`)
	if res[0].Ciphertext != res[1].Ciphertext || res[0].Ciphertext != fresh || res[2].Ciphertext == fresh {
		t.Fatalf("deterministic outputs: %q %q %q, fresh seal %q", res[0].Ciphertext, res[1].Ciphertext, res[2].Ciphertext, fresh)
	}
}

// TestRewrapRights: a credential without rewrap gets Forbidden for every item, audited as a
// denied rewrap once per id, without any key lookup; a credential limited to tenant- rewraps
// those ids and is refused the others, in the same call.
func TestRewrapRights(t *testing.T) {
	r := newRewrapRig(t)
	items := []RewrapItem{
		{KeyID: "tenant-a", Label: "ssn", Ciphertext: seal(t, "tenant-a", 1, envelope.Randomized, "ssn", nil, secretValue)},
		{KeyID: "t1", Label: "ssn", Ciphertext: seal(t, "t1", 1, envelope.Randomized, "ssn", nil, secretValue)},
		{KeyID: "t1", Label: "ssn", Ciphertext: seal(t, "t1", 2, envelope.Randomized, "ssn", nil, secretValue)},
	}
	res, err := r.session(t, readOnlyToken).Rewrap(context.Background(), items)
	if err != nil {
		t.Fatal(err)
	}
	for i, got := range res {
		if got.Err == nil || got.Err.Class != Forbidden || !strings.Contains(got.Err.Msg, "rewrap permission") {
			t.Fatalf("reader, item %d: %+v", i, got)
		}
	}
	if len(r.keys.lookups)+len(r.keys.versions) != 0 {
		t.Fatalf("a refused caller caused key lookups: %v %v", r.keys.lookups, r.keys.versions)
	}
	recs := r.records(t)
	wantDenied := []string{"tenant-a", "t1"}
	if len(recs) != 3 {
		t.Fatalf("%d audit records, want 2 denials and 1 batch record:\n%s", len(recs), r.audit)
	}
	for i, id := range wantDenied {
		if recs[i]["op"] != "rewrap" || recs[i]["key_id"] != id || recs[i]["result"] != "denied" || recs[i]["principal"] != "reader" {
			t.Errorf("denial %d: %v", i, recs[i])
		}
	}
	if b := recs[2]; b["items"] != 3.0 || b["failed"] != 3.0 || b["rewrapped"] != 0.0 || b["key_id_count"] != 2.0 || b["result"] != "ok" {
		t.Errorf("batch record: %v", b)
	}

	r.audit.Reset()
	res, err = r.session(t, tenantToken).Rewrap(context.Background(), items)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || !res[0].Rewrapped || res[0].Version != 2 {
		t.Fatalf("tenant-mig on tenant-a: %+v", res[0])
	}
	for _, got := range res[1:] {
		if got.Err == nil || got.Err.Class != Forbidden {
			t.Fatalf("tenant-mig on t1: %+v", got)
		}
	}
	recs = r.records(t)
	if len(recs) != 2 || recs[0]["key_id"] != "t1" || recs[0]["result"] != "denied" ||
		recs[1]["rewrapped"] != 1.0 || recs[1]["failed"] != 2.0 || recs[1]["principal"] != "tenant-mig" {
		t.Fatalf("audit records:\n%s", r.audit)
	}
}

// TestRewrapBatch: a mixed batch costs one current-version lookup per id and one key lookup
// per old (id, version); the one audit record has the counts and ids and no ciphertext or
// value; too many items refuse the whole call, audited as invalid.
func TestRewrapBatch(t *testing.T) {
	r := newRewrapRig(t)
	var items []RewrapItem
	for i := range 300 {
		id, v := "t1", uint32(1+i%3)
		if i%2 == 1 {
			id, v = "tenant-a", uint32(1+i%2)
		}
		items = append(items, RewrapItem{KeyID: id, Label: "ssn", Ciphertext: seal(t, id, v, envelope.Randomized, "ssn", nil, fmt.Sprintf(`"v%d"`, i))})
	}
	items = append(items, RewrapItem{KeyID: "nobody", Label: "ssn", Ciphertext: seal(t, "nobody", 1, envelope.Randomized, "ssn", nil, secretValue)})
	res, err := r.session(t, migratorToken).Rewrap(context.Background(), items)
	if err != nil {
		t.Fatal(err)
	}
	var rewrapped, unchanged int
	for i, got := range res[:300] {
		pt, err := open(items[i].KeyID, got.Version, "ssn", nil, got.Ciphertext)
		if got.Err != nil || err != nil || pt != fmt.Sprintf(`"v%d"`, i) {
			t.Fatalf("item %d: %+v, opens to %q, %v", i, got, pt, err)
		}
		if got.Rewrapped {
			rewrapped++
		} else {
			unchanged++
		}
	}
	if res[300].Err == nil || res[300].Err.Class != NotFound {
		t.Fatalf("unknown id: %+v", res[300])
	}
	// t1: 150 items at versions 1, 2, 3 in turn (3 current); tenant-a: 150 at version 2 (current).
	if rewrapped != 100 || unchanged != 200 {
		t.Fatalf("%d rewrapped, %d unchanged", rewrapped, unchanged)
	}
	// The metrics hook counts items by outcome, failures by class name (a bounded set).
	if want := map[string]int{"rewrapped": 100, "unchanged": 200, "not_found": 1}; !maps.Equal(r.items, want) {
		t.Fatalf("OnRewrap counts %v, want %v", r.items, want)
	}
	if r.keys.lookups["t1"] != 1 || r.keys.lookups["tenant-a"] != 1 || r.keys.versions["t1/1"] != 1 || r.keys.versions["t1/2"] != 1 || len(r.keys.versions) != 2 {
		t.Fatalf("lookups %v, versions %v", r.keys.lookups, r.keys.versions)
	}
	recs := r.records(t)
	if len(recs) != 1 {
		t.Fatalf("%d audit records:\n%s", len(recs), r.audit)
	}
	b := recs[0]
	ids, _ := b["key_ids"].([]any)
	if b["op"] != "rewrap" || b["items"] != 301.0 || b["rewrapped"] != 100.0 || b["unchanged"] != 200.0 || b["failed"] != 1.0 ||
		b["key_id_count"] != 3.0 || len(ids) != 3 || ids[0] != "t1" || ids[1] != "tenant-a" || ids[2] != "nobody" || b["principal"] != "migrator" {
		t.Fatalf("batch record: %v", b)
	}
	for _, it := range items {
		if strings.Contains(r.audit.String(), it.Ciphertext[5:40]) {
			t.Fatal("a ciphertext is in the audit log")
		}
	}
	if strings.Contains(r.audit.String(), "123-45-6789") || strings.Contains(r.audit.String(), `\"v1\"`) {
		t.Fatal("a value is in the audit log")
	}

	r.audit.Reset()
	over := make([]RewrapItem, MaxRewrapItems+1)
	_, err = r.session(t, migratorToken).Rewrap(context.Background(), over)
	if e := Classify(err); e.Class != InvalidArgument || !strings.Contains(e.Msg, "at most 1000") {
		t.Fatalf("%d items: %v", len(over), err)
	}
	if recs := r.records(t); len(recs) != 1 || recs[0]["result"] != "invalid" || recs[0]["items"] != 1001.0 {
		t.Fatalf("audit of a batch too large:\n%s", r.audit)
	}
	res, err = r.session(t, migratorToken).Rewrap(context.Background(), items[:MaxRewrapItems/1000])
	if err != nil || len(res) != 1 {
		t.Fatalf("small batch after a refusal: %v", err)
	}
}

// TestRewrapCanceled: items after the caller went away fail as Canceled, and nothing leaks.
func TestRewrapCanceled(t *testing.T) {
	r := newRewrapRig(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := r.session(t, migratorToken).Rewrap(ctx, []RewrapItem{
		{KeyID: "t1", Label: "ssn", Ciphertext: seal(t, "t1", 1, envelope.Randomized, "ssn", nil, secretValue)},
	})
	if err != nil || res[0].Err == nil || res[0].Err.Class != Canceled {
		t.Fatalf("canceled: %v, %+v", err, res)
	}
}

// BenchmarkRewrap: one call of 1,000 items under one key id, each a 13-byte value sealed under
// an old version (rewrapped) or the current one (unchanged), with warm keys. Reports items/s and
// the ciphertext bytes in and out per item (a rewrap keeps the length: same mode, key id and
// header size). Compare runs with benchstat.
func BenchmarkRewrap(b *testing.B) {
	for _, tc := range []struct {
		name string
		v    uint32
		mode envelope.Mode
	}{{"rewrapped", 1, envelope.Randomized}, {"deterministic", 1, envelope.Deterministic}, {"unchanged", 3, envelope.Randomized}} {
		b.Run(tc.name, func(b *testing.B) {
			k := newVersionedKeys()
			k.Put("tenant-acme", 3)
			svc, err := New(k, Options{Token: token})
			if err != nil {
				b.Fatal(err)
			}
			sess, err := svc.Authenticate(context.Background(), Caller{Authorization: "Bearer " + token}, audit.OpRewrap, "")
			if err != nil {
				b.Fatal(err)
			}
			items := make([]RewrapItem, MaxRewrapItems)
			in := 0
			for i := range items {
				items[i] = RewrapItem{KeyID: "tenant-acme", Label: "ssn", Context: []byte("tenant=acme"),
					Ciphertext: seal(b, "tenant-acme", tc.v, tc.mode, "ssn", []byte("tenant=acme"), fmt.Sprintf(`"%03d-45-6789"`, i%1000))}
				in += len(items[i].Ciphertext)
			}
			b.ReportAllocs()
			b.ResetTimer()
			var out int
			for b.Loop() {
				res, err := sess.Rewrap(context.Background(), items)
				if err != nil || res[0].Err != nil {
					b.Fatal(err, res[0].Err)
				}
				out = 0
				for _, r := range res {
					out += len(r.Ciphertext)
				}
			}
			b.ReportMetric(float64(b.N*len(items))/b.Elapsed().Seconds(), "items/s")
			b.ReportMetric(float64(in)/float64(len(items)), "B-in/item")
			b.ReportMetric(float64(out)/float64(len(items)), "B-out/item")
		})
	}
}
