package dynamodb_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/store"
	"github.com/rkms/rkms/store/dynamodb"
)

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name      string
		cfg       dynamodb.Config
		awsRegion string
		wantError string
	}{
		{"no-table", dynamodb.Config{Region: "us-east-1"}, "", "no table"},
		{"negative-timeout", dynamodb.Config{Table: "t", Region: "us-east-1", Timeout: -1}, "", "negative"},
		{"negative-attempts", dynamodb.Config{Table: "t", Region: "us-east-1", MaxAttempts: -1}, "", "negative"},
		{"no-region", dynamodb.Config{Table: "t"}, "", "no region"},
		{"url-without-region", dynamodb.Config{Table: "t", Endpoints: []string{"http://127.0.0.1:1"}}, "", "no region"},
		{"bad-endpoint", dynamodb.Config{Table: "t", Region: "us-east-1", Endpoints: []string{"us-east-1", "ftp://x"}}, "", "scheme"},
		{"create-table-global", dynamodb.Config{Table: "t", Endpoints: []string{"us-east-1", "eu-west-1"}, CreateTable: true}, "", "single endpoint"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := dynamodb.New(t.Context(), tc.cfg, aws.Config{Region: tc.awsRegion})
			if err == nil {
				_ = s.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tc.wantError) {
				t.Fatalf("New = %v, want an error containing %q", err, tc.wantError)
			}
		})
	}
}

func TestNewAcceptsRegionFromAWSConfig(t *testing.T) {
	s, err := dynamodb.New(t.Context(), dynamodb.Config{Table: "t"}, testenv.AWSConfig(t, "eu-west-1"))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Closed: fails without any network call.
	if _, err := s.Get(t.Context(), "k"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Get after Close = %v, want ErrUnavailable", err)
	}
}
