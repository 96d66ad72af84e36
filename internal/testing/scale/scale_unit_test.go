package scale

import (
	"strings"
	"testing"
	"time"

	"github.com/rkms/rkms/internal/plan"
)

// TestLineCounter: lines split over writes count once; a marker cut by a write boundary counts.
func TestLineCounter(t *testing.T) {
	c := NewLineCounter("Decryption called")
	for _, chunk := range []string{"INFO Decryption called: arn1\nINFO Encryption called\nINFO Decry", "ption called: arn2\n", "INFO Decryption called: arn3"} {
		if _, err := c.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.Count(); got != 2 {
		t.Errorf("count %d, want 2 (the third line is not complete)", got)
	}
	_, _ = c.Write([]byte("\n"))
	if got := c.Count(); got != 3 {
		t.Errorf("count %d, want 3", got)
	}
}

func TestParseCalls(t *testing.T) {
	in := `# HELP rkms_kms_request_duration_seconds Duration of KMS calls.
rkms_kms_request_duration_seconds_count{op="decrypt",region="us-east-1"} 10
rkms_kms_request_duration_seconds_count{op="decrypt",region="us-west-2"} 2
rkms_kms_request_duration_seconds_count{op="encrypt",region="us-west-2"} 3
rkms_kms_request_duration_seconds_sum{op="decrypt",region="us-east-1"} 0.5
rkms_store_request_duration_seconds_count{op="get"} 12
rkms_store_request_duration_seconds_count{op="create"} 1
`
	c, err := ParseCalls(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if c != (Calls{KMSDecrypt: 12, KMSOther: 3, StoreGet: 12}) {
		t.Errorf("got %+v", c)
	}
}

// TestReplicaConfig: the hierarchical keys of the contract reach the replicas only in that mode.
func TestReplicaConfig(t *testing.T) {
	o := Options{TTL: 15 * time.Second, MaxKeys: 1000, Mode: plan.Direct, BranchKeys: 2, WrappedTTL: time.Minute}
	regions := []Region{{Name: "us-east-1", KeyARN: "arn:aws:kms:us-east-1:1:key/x", Endpoint: "http://127.0.0.1:1"}}
	direct := ReplicaConfig(o, "/d", 1, 2, regions, "http://127.0.0.1:3", false)
	for _, k := range []string{"mode:", "hierarchical", "wrapped_ttl", "wrapped_max_keys"} {
		if strings.Contains(direct, k) {
			t.Errorf("direct config has %q:\n%s", k, direct)
		}
	}
	o.Mode = plan.Hierarchical
	hier := ReplicaConfig(o, "/d", 1, 2, regions, "http://127.0.0.1:3", false)
	for _, k := range []string{"mode: hierarchical", "hierarchical: {branch_keys: 2}", "wrapped_ttl: 1m0s", "wrapped_max_keys: 100000", "ttl: 15s", "max_keys: 1000"} {
		if !strings.Contains(hier, k) {
			t.Errorf("hierarchical config lacks %q:\n%s", k, hier)
		}
	}
}
