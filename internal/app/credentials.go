package app

import (
	"fmt"
	"strings"

	"github.com/rkms/rkms/internal/config"
	"github.com/rkms/rkms/internal/keyservice"
)

// adminCredentials reads the token of every admin credential (config.Credential.Token: the
// rules config check applies) and returns them as the key service's credentials.
func adminCredentials(creds []config.Credential) (keyservice.Options, error) {
	out := make([]keyservice.Credential, 0, len(creds))
	for _, c := range creds {
		tok, err := c.Token()
		if err != nil {
			return keyservice.Options{}, fmt.Errorf("admin credential %q: %w", c.Name, err)
		}
		out = append(out, keyservice.Credential{Principal: c.Principal(), Token: tok, Subject: c.MTLSSubject})
	}
	return keyservice.Options{Credentials: out}, nil
}

// credentialNames says where the admin credentials are, for the start-up banner.
func credentialNames(creds []config.Credential) string {
	names := make([]string, len(creds))
	for i, c := range creds {
		names[i] = c.Name
	}
	return "admin.credentials: " + strings.Join(names, ", ")
}
