package keyring_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/keyring"
	"github.com/rkms/rkms/keyring/localkms"
	"github.com/rkms/rkms/store"
)

// Example gets a tenant's data key from a keyring (created on first use) and seals and opens a
// field value with it. It imports only public packages, as code outside the rkms module would.
// The software region and the in-memory store keep it self-contained; a deployment uses
// keyring/awskms regions and a durable store.
func Example() {
	dir, err := os.MkdirTemp("", "rkms-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	quiet := slog.New(slog.DiscardHandler) // localkms warns that it is not for production
	region, err := localkms.Open(dir, "local", quiet)
	if err != nil {
		panic(err)
	}
	kr, err := keyring.New(store.NewMemory(), []keyring.Region{region}, keyring.Options{})
	if err != nil {
		panic(err)
	}
	defer kr.Close()

	ctx := context.Background()
	dk, err := kr.Get(ctx, "tenant-acme")
	if err != nil {
		panic(err)
	}
	key := envelope.Key{ID: dk.ID, Version: dk.Version, Secret: dk.Secret}
	text, err := envelope.Seal(nil, key, envelope.Randomized, "ssn", nil, []byte(`"123-45-6789"`))
	if err != nil {
		panic(err)
	}

	// A reader fetches the version the ciphertext names, then opens it.
	h, err := envelope.Parse(text)
	if err != nil {
		panic(err)
	}
	dk, err = kr.GetVersion(ctx, h.KeyID, h.KeyVersion)
	if err != nil {
		panic(err)
	}
	plaintext, err := envelope.Open(nil, envelope.Key{ID: dk.ID, Version: dk.Version, Secret: dk.Secret}, "ssn", nil, text)
	if err != nil {
		panic(err)
	}
	fmt.Println(h.KeyID, h.KeyVersion, string(plaintext))
	// Output:
	// tenant-acme 1 "123-45-6789"
}
