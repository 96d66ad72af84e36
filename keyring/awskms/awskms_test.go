package awskms_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/rkms/rkms/keyring"
	"github.com/rkms/rkms/keyring/awskms"
)

const testARN = "arn:aws:kms:us-east-1:111122223333:key/00000001-0000-4000-8000-000000000001"

func staticConfig() aws.Config {
	return aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDLOCAL", "secretlocal", ""),
	}
}

// fakeKMS answers every request with status and body, recording the requests.
type fakeKMS struct {
	status   int
	body     string
	stall    bool
	requests atomic.Int64
	last     atomic.Value // map[string]any
	target   atomic.Value // string
}

func (f *fakeKMS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	var req map[string]any
	_ = json.NewDecoder(r.Body).Decode(&req)
	f.last.Store(req)
	f.target.Store(r.Header.Get("X-Amz-Target"))
	if f.stall {
		<-r.Context().Done()
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(f.status)
	_, _ = w.Write([]byte(f.body))
}

func newRegion(t *testing.T, endpoint string, timeout time.Duration) *awskms.Region {
	t.Helper()
	r, err := awskms.New(awskms.Config{Name: "us-east-1", KeyID: testARN, Endpoint: endpoint, Timeout: timeout}, staticConfig())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestErrorMapping(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		body        string
		stall       bool
		unavailable bool
		wantMsg     string
	}{
		{"invalid ciphertext", 400, `{"__type":"InvalidCiphertextException","message":"x"}`, false, false, "authentication failed"},
		{"incorrect key", 400, `{"__type":"IncorrectKeyException","message":"x"}`, false, false, "authentication failed"},
		{"access denied", 400, `{"__type":"AccessDeniedException","message":"not authorized"}`, false, false, "AccessDeniedException"},
		{"disabled key", 400, `{"__type":"DisabledException","message":"x"}`, false, false, "DisabledException"},
		{"throttled", 400, `{"__type":"ThrottlingException","message":"slow down"}`, false, true, "ThrottlingException"},
		{"internal", 500, `{"__type":"KMSInternalException","message":"x"}`, false, true, "KMSInternalException"},
		{"dependency timeout", 503, `{"__type":"DependencyTimeoutException","message":"x"}`, false, true, "DependencyTimeoutException"},
		{"bare 502", 502, `<html>bad gateway</html>`, false, true, "502"},
		// Without an error code the HTTP status decides: 5xx, 429 and 408 are worth another
		// region (or a retry later); any other 4xx is a refusal.
		{"bare 500", 500, `<html>oops</html>`, false, true, "500"},
		{"bare 499", 499, `<html>closed</html>`, false, false, "499"},
		{"bare 429", 429, `<html>too many requests</html>`, false, true, "429"},
		{"bare 408", 408, `<html>request timeout</html>`, false, true, "408"},
		{"bare 403", 403, `<html>forbidden</html>`, false, false, "403"},
		{"stalled", 200, ``, true, true, "deadline exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeKMS{status: tt.status, body: tt.body, stall: tt.stall}
			srv := httptest.NewServer(f)
			defer srv.Close()
			// Only the stalled case needs a short deadline: elsewhere a busy machine must not
			// turn the mapped error into a deadline error.
			timeout := 5 * time.Second
			if tt.stall {
				timeout = 100 * time.Millisecond
			}
			r := newRegion(t, srv.URL, timeout)
			_, err := r.Decrypt(context.Background(), []byte("blob"), keyring.EncryptionContext("k", 1))
			if err == nil {
				t.Fatal("Decrypt succeeded")
			}
			if got := errors.Is(err, keyring.ErrRegionUnavailable); got != tt.unavailable {
				t.Fatalf("%v: unavailable=%v, want %v", err, got, tt.unavailable)
			}
			if got := errors.Is(err, keyring.ErrRegionRejected); got == tt.unavailable {
				t.Fatalf("%v: rejected=%v", err, got)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("error %q does not mention %q", err, tt.wantMsg)
			}
			if n := f.requests.Load(); n != 1 {
				t.Fatalf("%d attempts, want 1 (no SDK retries)", n)
			}
		})
	}
}

func TestConnectionRefusedFailsFast(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	r := newRegion(t, "http://"+addr, time.Second)
	start := time.Now()
	_, err = r.Encrypt(context.Background(), make([]byte, 32), keyring.EncryptionContext("k", 1))
	if !errors.Is(err, keyring.ErrRegionUnavailable) {
		t.Fatalf("Encrypt to a closed port: %v", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("refused connection took %v", d)
	}
}

func TestRequestsCarryKeyAndContext(t *testing.T) {
	f := &fakeKMS{status: 200, body: `{"KeyId":"` + testARN + `","CiphertextBlob":"YmxvYg==","Plaintext":"` +
		strings.Repeat("A", 43) + `="}`}
	srv := httptest.NewServer(f)
	defer srv.Close()
	r := newRegion(t, srv.URL, time.Second)
	encCtx := keyring.EncryptionContext("orders", 7)
	ctx := context.Background()

	pt, blob, err := r.GenerateDataKey(ctx, encCtx)
	if err != nil || len(pt) != 32 || !bytes.Equal(blob, []byte("blob")) {
		t.Fatalf("GenerateDataKey: %d-byte key, blob %q, %v", len(pt), blob, err)
	}
	check := func(target string, want map[string]any) {
		t.Helper()
		if got := f.target.Load().(string); got != "TrentService."+target {
			t.Fatalf("target %q", got)
		}
		req := f.last.Load().(map[string]any)
		for k, v := range want {
			gotJSON, _ := json.Marshal(req[k])
			wantJSON, _ := json.Marshal(v)
			if !bytes.Equal(gotJSON, wantJSON) {
				t.Fatalf("%s: %s = %s, want %s", target, k, gotJSON, wantJSON)
			}
		}
	}
	ec := map[string]any{"rkms:key-id": "orders", "rkms:key-version": "7"}
	check("GenerateDataKey", map[string]any{"KeyId": testARN, "KeySpec": "AES_256", "EncryptionContext": ec})
	if _, err := r.Encrypt(ctx, pt, encCtx); err != nil {
		t.Fatal(err)
	}
	check("Encrypt", map[string]any{"KeyId": testARN, "EncryptionContext": ec})
	if _, err := r.Decrypt(ctx, blob, encCtx); err != nil {
		t.Fatal(err)
	}
	check("Decrypt", map[string]any{"KeyId": testARN, "EncryptionContext": ec, "CiphertextBlob": "YmxvYg=="})
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name  string
		cfg   awskms.Config
		alias bool
		ok    bool
	}{
		{"arn", awskms.Config{Name: "us-east-1", KeyID: testARN}, false, true},
		{"key id", awskms.Config{Name: "us-east-1", KeyID: "00000001-0000-4000-8000-000000000001"}, false, true},
		{"alias", awskms.Config{Name: "us-east-1", KeyID: "alias/rkms"}, true, false},
		{"alias arn", awskms.Config{Name: "us-east-1", KeyID: "arn:aws:kms:us-east-1:111122223333:alias/rkms"}, true, false},
		{"alias allowed", awskms.Config{Name: "us-east-1", KeyID: "alias/rkms", AllowAlias: true}, false, true},
		{"arn of another region", awskms.Config{Name: "eu-west-1", KeyID: testARN}, false, false},
		{"custom name with aws region", awskms.Config{Name: "primary", AWSRegion: "us-east-1", KeyID: testARN}, false, true},
		{"not a kms arn", awskms.Config{Name: "us-east-1", KeyID: "arn:aws:s3:us-east-1:1:bucket/x"}, false, false},
		{"empty key", awskms.Config{Name: "us-east-1"}, false, false},
		{"empty name", awskms.Config{KeyID: testARN}, false, false},
		{"negative timeout", awskms.Config{Name: "us-east-1", KeyID: testARN, Timeout: -1}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := awskms.New(tt.cfg, staticConfig())
			if (err == nil) != tt.ok {
				t.Fatalf("New: %v, want ok=%v", err, tt.ok)
			}
			if errors.Is(err, awskms.ErrAliasKeyID) != tt.alias {
				t.Fatalf("New: %v, alias error want %v", err, tt.alias)
			}
		})
	}
}
