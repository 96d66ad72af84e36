package extproc

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// TestRetiredVersionRefused: a stored field under a retired key version is refused with 403 and
// the code key_version_retired, naming no tenant, field or version; fields under open versions
// still read.
func TestRetiredVersionRefused(t *testing.T) {
	e := newTestEnv(t, Options{})
	e.mustDo(jsonReq("POST", "/patients", "t1", patient), 201) // sealed under version 1
	e.keys.rotate("tenant-t1")
	e.mustDo(jsonReq("GET", "/patients/1", "t1", ""), 200) // version 1 still open
	e.keys.retire("tenant-t1", 2)
	x := e.mustDo(jsonReq("GET", "/patients/1", "t1", ""), http.StatusForbidden)
	var body struct{ Error, Code string }
	if err := json.Unmarshal(x.client.body, &body); err != nil {
		t.Fatal(err)
	}
	if body.Code != RetiredCode || body.Error != retiredMsg {
		t.Fatalf("refusal %s, want code %q", x.client.body, RetiredCode)
	}
	if strings.Contains(string(x.client.body), "t1") || strings.Contains(string(x.client.body), "ssn") {
		t.Fatalf("refusal %s names the tenant or the field", x.client.body)
	}
	// Data sealed now (version 2) reads back.
	e.mustDo(jsonReq("POST", "/patients", "t1", patient), 201)
	x = e.mustDo(jsonReq("GET", "/patients/2", "t1", ""), 200)
	if !strings.Contains(string(x.client.body), "123-45-6789") {
		t.Fatalf("read back %s", x.client.body)
	}
}

func TestClassifyRetired(t *testing.T) {
	for _, ph := range []phase{phaseRequest, phaseResponse} {
		pe := classify(ph, fmt.Errorf("get key version 1: %w", ErrKeyRetired))
		if got := httpStatus(pe); got != http.StatusForbidden || pe.kind.details() != "rkms_key_version_retired" || pe.kind.code() != RetiredCode {
			t.Errorf("%s: status %d details %s code %s", ph, got, pe.kind.details(), pe.kind.code())
		}
	}
	if pe := classify(phaseRequest, fmt.Errorf("reserve: %w", ErrKeySealLimit)); httpStatus(pe) != http.StatusServiceUnavailable {
		t.Errorf("seal limit after renewal: status %d, want 503", httpStatus(pe))
	}
}

// countingKeys counts seals per version like a keyring with a seal limit: version 1 may seal
// only limit values, then refuses with ErrKeySealLimit and the key is rotated.
type countingKeys struct {
	*fakeKeys
	limit int
	mu    sync.Mutex
	count map[uint32]int
}

func (c *countingKeys) ReserveSeals(ctx context.Context, id string, v uint32, n int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.count[v]+n > c.limit {
		c.fakeKeys.rotate(id)
		return fmt.Errorf("version %d: %w", v, ErrKeySealLimit)
	}
	c.count[v] += n
	return nil
}

// TestSealCounterRenewsKey: every sealed field is reserved before it is sealed, and a version
// out of seals is replaced mid-body by the current key; the body reads back whole.
func TestSealCounterRenewsKey(t *testing.T) {
	e := newTestEnv(t, Options{})
	ck := &countingKeys{fakeKeys: e.keys, limit: 2, count: map[uint32]int{}}
	srv, err := NewServer(loadPolicies(t), ck, Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.srv, e.envoy = srv, startServer(t, srv)
	e.mustDo(jsonReq("POST", "/patients", "t1", patient), 201)
	ck.mu.Lock()
	c1, c2 := ck.count[1], ck.count[2]
	ck.mu.Unlock()
	if c1 != 2 || c2 < 1 {
		t.Fatalf("seals reserved: version 1 %d, version 2 %d; want 2 then the rest", c1, c2)
	}
	x := e.mustDo(jsonReq("GET", "/patients/1", "t1", ""), 200)
	if !strings.Contains(string(x.client.body), "123-45-6789") || !strings.Contains(string(x.client.body), "555-0100") {
		t.Fatalf("read back %s", x.client.body)
	}
}
