package config

import (
	"crypto/sha256"
	"fmt"
	"os"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/rkms/rkms/internal/access"
	"github.com/rkms/rkms/keyring"
)

// MinTokenLen is the shortest admin token accepted, from any source.
const MinTokenLen = 16

// Credential is one named admin credential (admin.credentials[]): exactly one source (a token
// file, a token environment variable, or a client certificate identity), the operations it may
// do (access.Operations) and, optionally, the key id prefixes it may do them on.
type Credential struct {
	Name string `yaml:"name"`
	// TokenFile holds the bearer token (at least 16 characters, mode 0600 or stricter).
	TokenFile string `yaml:"token_file"`
	// TokenEnv names an environment variable that holds the bearer token.
	TokenEnv string `yaml:"token_env"`
	// MTLSSubject is a URI SAN (spiffe://...) or DNS SAN of a client certificate that the admin
	// listeners verified (admin.tls.client_ca_file is required).
	MTLSSubject string `yaml:"mtls_subject"`
	// Allow lists the operations: read, create, rotate, delete, list, rewrap.
	Allow []string `yaml:"allow"`
	// IDPrefixes, when set, restricts the credential to key ids starting with one of them.
	IDPrefixes []string `yaml:"id_prefixes"`
}

// Principal is who a caller authenticated with c is.
func (c Credential) Principal() access.Principal {
	return access.Principal{Name: c.Name, Allow: c.Allow, IDPrefixes: c.IDPrefixes}
}

// Token reads c's bearer token from its file or environment variable with the rules of
// [ReadTokenFile] and [CheckToken]; "" for a certificate credential.
func (c Credential) Token() (string, error) {
	switch {
	case c.TokenFile != "":
		return ReadTokenFile(c.TokenFile)
	case c.TokenEnv != "":
		t := strings.TrimSpace(os.Getenv(c.TokenEnv))
		if t == "" {
			return "", fmt.Errorf("environment variable %s is not set", c.TokenEnv)
		}
		return t, CheckToken("$"+c.TokenEnv, t)
	}
	return "", nil
}

// CheckToken refuses a token shorter than MinTokenLen; source names where it came from.
func CheckToken(source, token string) error {
	if len(token) < MinTokenLen {
		return fmt.Errorf("%s: token shorter than %d characters", source, MinTokenLen)
	}
	return nil
}

// ReadTokenFile returns the token in the file at path (surrounding white space removed). A file
// that group or others may read or write is refused, and so is a token shorter than
// MinTokenLen. Errors wrap the file system's (fs.ErrNotExist for a missing file).
func ReadTokenFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("token file %s: mode %04o lets group or others read it: chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	t := strings.TrimSpace(string(b))
	return t, CheckToken("token file "+path, t)
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// adminCredentials checks the token source of the admin APIs: the single token (token_file or
// RKMS_ADMIN_TOKEN) when admin.credentials is empty, else every credential (and that the single
// token is not also set: credentials replace it).
func (c *checker) adminCredentials(a *Admin) {
	if len(a.Credentials) == 0 {
		if a.TokenFile == "" && EnvAdminToken() == "" {
			c.add("admin.token_file", "must be set (or RKMS_ADMIN_TOKEN, or admin.credentials)")
		}
		return
	}
	if present(c.root, "admin.token_file") {
		c.add("admin.token_file", "admin.credentials replaces the single token: remove token_file, or add it as a credential")
	}
	envUsed := false
	names := map[string]int{}
	tokens := map[[sha256.Size]byte]int{}
	subjects := map[string]int{}
	for i, cr := range a.Credentials {
		p := fmt.Sprintf("admin.credentials[%d]", i)
		envUsed = envUsed || cr.TokenEnv == AdminTokenEnv
		if err := access.CheckName(cr.Name); err != nil {
			c.add(p+".name", "%v", err)
		} else if first, dup := names[cr.Name]; dup {
			c.add(p+".name", "duplicate credential name %q (first at admin.credentials[%d])", cr.Name, first)
		} else {
			names[cr.Name] = i
		}
		c.credentialOps(p, cr)
		c.credentialSource(p, a, cr, i, tokens, subjects)
	}
	if EnvAdminToken() != "" && !envUsed {
		c.add("admin.credentials", "%s is set, but admin.credentials replaces the single token: unset it, or add a credential with token_env: %s",
			AdminTokenEnv, AdminTokenEnv)
	}
}

// credentialOps checks the operations and id prefixes of the credential at p.
func (c *checker) credentialOps(p string, cr Credential) {
	if len(cr.Allow) == 0 {
		c.add(p+".allow", "must list at least one operation (%s)", strings.Join(access.Operations, ", "))
	}
	for j, op := range cr.Allow {
		if !access.Known(op) {
			c.add(fmt.Sprintf("%s.allow[%d]", p, j), "unknown operation %q (operations: %s)", op, strings.Join(access.Operations, ", "))
		}
	}
	for j, pre := range cr.IDPrefixes {
		if keyring.ValidateID(pre) != nil {
			c.add(fmt.Sprintf("%s.id_prefixes[%d]", p, j), "must be the start of a valid key id: 1 to 256 characters of A-Z a-z 0-9 . _ : / @ + = - (got %q)", pre)
		}
	}
}

// credentialSource checks that the credential at p (index i) has exactly one source, that its
// token can be read and is not another credential's, and that a subject has mutual TLS to come
// from and is not another credential's.
func (c *checker) credentialSource(p string, a *Admin, cr Credential, i int, tokens map[[sha256.Size]byte]int, subjects map[string]int) {
	n := 0
	for _, s := range []string{cr.TokenFile, cr.TokenEnv, cr.MTLSSubject} {
		if s != "" {
			n++
		}
	}
	switch {
	case n == 0:
		c.add(p, "needs a token source: token_file, token_env or mtls_subject")
		return
	case n > 1:
		c.add(p, "set only one of token_file, token_env and mtls_subject")
		return
	case cr.MTLSSubject != "":
		if a.TLS.ClientCAFile == "" {
			c.add(p+".mtls_subject", "needs mutual TLS on the admin listeners: set admin.tls.client_ca_file")
		}
		if first, dup := subjects[cr.MTLSSubject]; dup {
			c.add(p+".mtls_subject", "same subject as admin.credentials[%d]", first)
		}
		subjects[cr.MTLSSubject] = i
		return
	}
	key := p + ".token_file"
	if cr.TokenEnv != "" {
		key = p + ".token_env"
		if !envName.MatchString(cr.TokenEnv) {
			c.add(key, "must be an environment variable name (got %q)", cr.TokenEnv)
			return
		}
	}
	t, err := cr.Token()
	if err != nil {
		c.add(key, "%v", err)
		return
	}
	d := sha256.Sum256([]byte(t))
	if first, dup := tokens[d]; dup {
		c.add(key, "same token as admin.credentials[%d]: each credential needs its own", first)
	}
	tokens[d] = i
}

// present reports whether the dotted path is written in the parsed file (not a default).
func present(root *yaml.Node, path string) bool {
	if root == nil || len(root.Content) == 0 {
		return false
	}
	n := root.Content[0]
	for _, part := range splitPath(path) {
		if n, _ = child(n, part); n == nil {
			return false
		}
	}
	return true
}
