package config

import (
	"strings"

	"github.com/rkms/rkms/internal/tlsconf"
)

// TLS names the PEM files of a listener's TLS. All empty: plaintext. cert_file and key_file
// enable TLS (1.2 minimum, 1.3 preferred); client_ca_file additionally requires every client to
// present a certificate issued by one of its CAs (mutual TLS). Changed files are reloaded.
type TLS struct {
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	ClientCAFile string `yaml:"client_ca_file"`
}

// Files returns t in the form package tlsconf takes.
func (t TLS) Files() tlsconf.Files {
	return tlsconf.Files{CertFile: t.CertFile, KeyFile: t.KeyFile, ClientCAFile: t.ClientCAFile}
}

// tls checks that a TLS block is complete and that its files exist and parse.
func (c *checker) tls(path string, t TLS) {
	f := t.Files()
	if !f.Enabled() {
		return
	}
	if t.CertFile == "" {
		c.add(path+".cert_file", "must be set when %s is used", path)
	}
	if t.KeyFile == "" {
		c.add(path+".key_file", "must be set when %s is used", path)
	}
	if t.CertFile == "" || t.KeyFile == "" {
		return
	}
	if err := tlsconf.Check(f); err != nil {
		c.add(path, "%s", strings.TrimPrefix(err.Error(), tlsconf.ErrFiles.Error()+": "))
	}
}
