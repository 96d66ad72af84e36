package envelope_test

import (
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/secret"
)

// Example seals and opens one field value with a data key of the caller's own. It imports
// only public packages (envelope and secret), as code outside the rkms module would; in rkms
// the keyring supplies the key (see the keyring package's example).
func Example() {
	dek := make([]byte, envelope.DataKeyLen)
	if _, err := rand.Read(dek); err != nil {
		panic(err)
	}
	key := envelope.Key{ID: "tenant-acme", Version: 1, Secret: secret.New(dek)} // New takes ownership of dek

	// Seal the exact JSON text of a field value under its label ("ssn") and a tenant context.
	text, err := envelope.Seal(nil, key, envelope.Randomized, "ssn", []byte("acme"), []byte(`"123-45-6789"`))
	if err != nil {
		panic(err)
	}
	fmt.Println(envelope.IsCiphertext(text), len(text))

	// A reader learns which key version to fetch from the header, then opens the value.
	h, err := envelope.Parse(text)
	if err != nil {
		panic(err)
	}
	fmt.Println(h.KeyID, h.KeyVersion, h.Mode)
	plaintext, err := envelope.Open(nil, key, "ssn", []byte("acme"), text)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(plaintext))

	// The same text does not open as another field.
	_, err = envelope.Open(nil, key, "email", []byte("acme"), text)
	fmt.Println(errors.Is(err, envelope.ErrAuthentication), err)
	// Output:
	// true 84
	// tenant-acme 1 randomized
	// "123-45-6789"
	// true authentication failed
}
