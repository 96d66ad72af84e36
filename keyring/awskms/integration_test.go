package awskms_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/keyring"
	"github.com/rkms/rkms/keyring/awskms"
)

func TestLocalKMS(t *testing.T) {
	testenv.Integration(t)
	k := testenv.StartKMS(t, "us-east-1")
	other := testenv.StartKMS(t, "eu-west-1")
	ctx := context.Background()
	tests := []struct {
		name  string
		keyID string
	}{
		{"key arn", k.KeyARN},
		{"key id", k.KeyID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := awskms.New(awskms.Config{Name: "us-east-1", KeyID: tt.keyID, Endpoint: k.Endpoint}, testenv.AWSConfig(t, "us-east-1"))
			if err != nil {
				t.Fatal(err)
			}
			encCtx := keyring.EncryptionContext("orders", 1)
			pt, blob, err := r.GenerateDataKey(ctx, encCtx)
			if err != nil || len(pt) != keyring.DataKeySize {
				t.Fatalf("GenerateDataKey: %d bytes, %v\n%s", len(pt), err, k.Output())
			}
			got, err := r.Decrypt(ctx, blob, encCtx)
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("Decrypt: %v", err)
			}
			blob2, err := r.Encrypt(ctx, pt, encCtx)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := r.Decrypt(ctx, blob2, encCtx); err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("Decrypt of Encrypt: %v", err)
			}
			// Another id or version in the context: refused, as an authentication failure.
			for _, bad := range []map[string]string{keyring.EncryptionContext("orders", 2), keyring.EncryptionContext("other", 1), nil} {
				_, err := r.Decrypt(ctx, blob, bad)
				if !errors.Is(err, keyring.ErrRegionRejected) || errors.Is(err, keyring.ErrRegionUnavailable) {
					t.Fatalf("Decrypt with context %v: %v, want a rejection", bad, err)
				}
			}
		})
	}
	// A blob from another region's key does not open here (Decrypt names the key).
	r1, _ := awskms.New(awskms.Config{Name: "us-east-1", KeyID: k.KeyARN, Endpoint: k.Endpoint}, testenv.AWSConfig(t, "us-east-1"))
	r2, _ := awskms.New(awskms.Config{Name: "eu-west-1", KeyID: other.KeyARN, Endpoint: other.Endpoint}, testenv.AWSConfig(t, "eu-west-1"))
	encCtx := keyring.EncryptionContext("x", 1)
	_, blob, err := r2.GenerateDataKey(ctx, encCtx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r1.Decrypt(ctx, blob, encCtx); !errors.Is(err, keyring.ErrRegionRejected) {
		t.Fatalf("cross-region Decrypt: %v", err)
	}
}

func TestLocalKMSOutages(t *testing.T) {
	testenv.Integration(t)
	k := testenv.StartKMS(t, "us-east-1")
	r, err := awskms.New(awskms.Config{Name: "us-east-1", KeyID: k.KeyARN, Endpoint: k.Endpoint, Timeout: 200 * time.Millisecond},
		testenv.AWSConfig(t, "us-east-1"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	encCtx := keyring.EncryptionContext("k", 1)
	if _, _, err := r.GenerateDataKey(ctx, encCtx); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		outage  func()
		maxTime time.Duration
	}{
		{"killed", k.Stop, 100 * time.Millisecond},
		{"stalled", k.Stall, 400 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.outage()
			defer k.Start()
			for range 20 { // many calls: no retry quota to drain, each fails on its own
				start := time.Now()
				_, err := r.Encrypt(ctx, make([]byte, 32), encCtx)
				if !errors.Is(err, keyring.ErrRegionUnavailable) {
					t.Fatalf("Encrypt during outage: %v", err)
				}
				if d := time.Since(start); d > tt.maxTime {
					t.Fatalf("failed call took %v, want under %v", d, tt.maxTime)
				}
			}
		})
	}
	if _, err := r.Encrypt(ctx, make([]byte, 32), encCtx); err != nil {
		t.Fatalf("after restart: %v", err)
	}
}
