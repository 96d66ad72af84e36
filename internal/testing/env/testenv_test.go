package testenv

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// TestKMSLifecycle proves the harness itself: a seeded key works, survives a restart, and a
// stopped region refuses quickly.
func TestKMSLifecycle(t *testing.T) {
	Integration(t)
	k := StartKMS(t, "eu-west-1")
	client := kms.NewFromConfig(AWSConfig(t, k.Region), func(o *kms.Options) {
		o.BaseEndpoint = aws.String(k.Endpoint)
		o.RetryMaxAttempts = 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ec := map[string]string{"rkms:key-id": "x"}
	gen, err := client.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(k.KeyARN),
		KeySpec: types.DataKeySpecAes256, EncryptionContext: ec})
	if err != nil {
		t.Fatalf("GenerateDataKey: %v\n%s", err, k.Output())
	}
	k.Stop()
	if _, err := client.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: gen.CiphertextBlob, EncryptionContext: ec}); err == nil {
		t.Fatal("Decrypt succeeded against a stopped region")
	}
	k.Start()
	dec, err := client.Decrypt(ctx, &kms.DecryptInput{KeyId: aws.String(k.KeyARN), CiphertextBlob: gen.CiphertextBlob, EncryptionContext: ec})
	if err != nil {
		t.Fatalf("Decrypt after restart: %v\n%s", err, k.Output())
	}
	if string(dec.Plaintext) != string(gen.Plaintext) {
		t.Fatal("restart changed the key")
	}
	k.Stall()
	sctx, scancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer scancel()
	if _, err := client.Decrypt(sctx, &kms.DecryptInput{CiphertextBlob: gen.CiphertextBlob, EncryptionContext: ec}); err == nil {
		t.Fatal("Decrypt succeeded against a stalled region")
	}
	k.Start()
	if _, err := client.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: gen.CiphertextBlob, EncryptionContext: ec}); err != nil {
		t.Fatalf("Decrypt after resume: %v", err)
	}
}

func TestDynaliteLifecycle(t *testing.T) {
	Integration(t)
	d := StartDynalite(t)
	db := dynamodb.NewFromConfig(AWSConfig(t, "us-east-1"), func(o *dynamodb.Options) {
		o.BaseEndpoint = aws.String(d.Endpoint)
		o.RetryMaxAttempts = 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := db.ListTables(ctx, &dynamodb.ListTablesInput{}); err != nil {
		t.Fatalf("ListTables: %v\n%s", err, d.Output())
	}
	d.Stop()
	if _, err := db.ListTables(ctx, &dynamodb.ListTablesInput{}); err == nil {
		t.Fatal("ListTables succeeded against a stopped dynalite")
	}
	d.Start()
	if _, err := db.ListTables(ctx, &dynamodb.ListTablesInput{}); err != nil {
		t.Fatalf("ListTables after restart: %v", err)
	}
}

func TestEnvoyStarts(t *testing.T) {
	Integration(t)
	admin, listen := FreePort(t), FreePort(t)
	cfg := fmt.Sprintf(`admin:
  address: {socket_address: {address: 127.0.0.1, port_value: %d}}
static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 127.0.0.1, port_value: %d}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: t
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: /}
                direct_response: {status: 200, body: {inline_string: ok}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
`, admin, listen)
	if out, err := Validate(t, cfg); err != nil {
		t.Fatalf("envoy --mode validate: %v\n%s", err, out)
	}
	e := StartEnvoy(t, cfg)
	if e.AdminURL == "" {
		t.Fatal("no admin URL")
	}
}
