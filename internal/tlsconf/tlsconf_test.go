package tlsconf

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rkms/rkms/internal/testing/tlstest"
)

// handshake runs one TLS handshake over a loopback TCP connection (buffered, unlike net.Pipe, so
// that an alert never blocks) and returns both sides' results.
func handshake(t *testing.T, server, client *tls.Config) (tls.ConnectionState, error, error) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	b, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a, err := lis.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	_ = a.SetDeadline(time.Now().Add(5 * time.Second))
	_ = b.SetDeadline(time.Now().Add(5 * time.Second))
	srv := tls.Server(a, server)
	var serr error
	var wg sync.WaitGroup
	wg.Go(func() {
		serr = srv.Handshake()
		if serr != nil {
			a.Close() // unblock the client
		}
	})
	cli := tls.Client(b, client)
	cerr := cli.Handshake()
	if cerr == nil {
		// In TLS 1.3 the client finishes before the server has checked its certificate: a read
		// sees the server's verdict.
		_ = b.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		_, _ = cli.Read(make([]byte, 1))
	} else {
		b.Close()
	}
	wg.Wait()
	return cli.ConnectionState(), serr, cerr
}

func TestCheck(t *testing.T) {
	ca := tlstest.NewCA(t, "ca")
	other := tlstest.NewCA(t, "other")
	srv := ca.Server(t, "server")
	otherSrv := other.Server(t, "server2")
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		files Files
		want  string // substring of the error; "" = valid
	}{
		{"server only", Files{CertFile: srv.CertFile, KeyFile: srv.KeyFile}, ""},
		{"mutual", Files{CertFile: srv.CertFile, KeyFile: srv.KeyFile, ClientCAFile: ca.File}, ""},
		{"no key", Files{CertFile: srv.CertFile}, "cert_file and key_file are both required"},
		{"no cert", Files{KeyFile: srv.KeyFile, ClientCAFile: ca.File}, "cert_file and key_file are both required"},
		{"missing cert", Files{CertFile: filepath.Join(dir, "absent.pem"), KeyFile: srv.KeyFile}, "no such file"},
		{"key of another cert", Files{CertFile: srv.CertFile, KeyFile: otherSrv.KeyFile}, "private key does not match"},
		{"cert not PEM", Files{CertFile: notPEM, KeyFile: srv.KeyFile}, "load certificate"},
		{"CA not PEM", Files{CertFile: srv.CertFile, KeyFile: srv.KeyFile, ClientCAFile: notPEM}, "holds no PEM certificate"},
		{"CA missing", Files{CertFile: srv.CertFile, KeyFile: srv.KeyFile, ClientCAFile: filepath.Join(dir, "x")}, "no such file"},
		{"CA is a directory", Files{CertFile: srv.CertFile, KeyFile: srv.KeyFile, ClientCAFile: dir}, "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(tt.files)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrFiles) {
				t.Fatalf("Check = %v, want an ErrFiles error containing %q", err, tt.want)
			}
		})
	}
}

// TestHandshakes proves the policy: TLS 1.2 minimum, 1.3 preferred, and with a client CA only
// clients holding a certificate from that CA get through.
func TestHandshakes(t *testing.T) {
	ca := tlstest.NewCA(t, "ca")
	other := tlstest.NewCA(t, "other")
	srv := ca.Server(t, "server")
	good := ca.Client(t, "client")
	stranger := other.Client(t, "stranger")
	serverOnly, err := New(Files{CertFile: srv.CertFile, KeyFile: srv.KeyFile}, Options{NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	mutual, err := New(Files{CertFile: srv.CertFile, KeyFile: srv.KeyFile, ClientCAFile: ca.File}, Options{NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	withMax := func(c *tls.Config, v uint16) *tls.Config { c.MinVersion, c.MaxVersion = tls.VersionTLS10, v; return c }
	withALPN := func(c *tls.Config) *tls.Config { c.NextProtos = []string{"h2"}; return c }
	tests := []struct {
		name    string
		server  *tls.Config
		client  *tls.Config
		ok      bool
		version uint16
	}{
		{"tls 1.3 preferred", serverOnly, withALPN(tlstest.ClientConfig(ca.Pool())), true, tls.VersionTLS13},
		{"tls 1.2 accepted", serverOnly, withMax(tlstest.ClientConfig(ca.Pool()), tls.VersionTLS12), true, tls.VersionTLS12},
		{"tls 1.1 refused", serverOnly, withMax(tlstest.ClientConfig(ca.Pool()), tls.VersionTLS11), false, 0},
		{"server unknown to client", serverOnly, tlstest.ClientConfig(other.Pool()), false, 0},
		{"mtls with the right cert", mutual, tlstest.ClientConfig(ca.Pool(), good.TLS), true, tls.VersionTLS13},
		{"mtls 1.2 with the right cert", mutual, withMax(tlstest.ClientConfig(ca.Pool(), good.TLS), tls.VersionTLS12), true, tls.VersionTLS12},
		{"mtls without a cert", mutual, tlstest.ClientConfig(ca.Pool()), false, 0},
		{"mtls with another CA's cert", mutual, tlstest.ClientConfig(ca.Pool(), stranger.TLS), false, 0},
		{"mtls with a server cert as client cert", mutual, tlstest.ClientConfig(ca.Pool(), srv.TLS), false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, serr, cerr := handshake(t, tt.server, tt.client)
			if tt.ok {
				if serr != nil || cerr != nil {
					t.Fatalf("handshake failed: server %v, client %v", serr, cerr)
				}
				if st.Version != tt.version {
					t.Fatalf("version %x, want %x", st.Version, tt.version)
				}
				if tt.client.NextProtos != nil && st.NegotiatedProtocol != "h2" {
					t.Fatalf("ALPN %q, want h2", st.NegotiatedProtocol)
				}
				return
			}
			if serr == nil {
				t.Fatalf("server accepted the handshake (client: %v)", cerr)
			}
		})
	}
}

// TestReload replaces the files under a running config: new handshakes get the new certificate
// once the check interval has passed, and a broken pair keeps the old one.
func TestReload(t *testing.T) {
	ca := tlstest.NewCA(t, "ca")
	first := ca.Server(t, "first")
	second := ca.Server(t, "second")
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	copyFile(t, first.CertFile, cert)
	copyFile(t, first.KeyFile, key)
	now := time.Now()
	clock := func() time.Time { return now }
	cfg, err := New(Files{CertFile: cert, KeyFile: key}, Options{CheckInterval: time.Second, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	served := func() string {
		t.Helper()
		st, serr, cerr := handshake(t, cfg, tlstest.ClientConfig(ca.Pool()))
		if serr != nil || cerr != nil {
			t.Fatalf("handshake: %v / %v", serr, cerr)
		}
		return st.PeerCertificates[0].Subject.CommonName
	}
	if got := served(); got != "first" {
		t.Fatalf("serving %q", got)
	}
	// A half-written update: the new certificate with the old key.
	copyFile(t, second.CertFile, cert)
	touch(t, cert, now.Add(time.Minute))
	now = now.Add(2 * time.Second)
	if got := served(); got != "first" {
		t.Fatalf("mismatched pair: serving %q, want the previous certificate", got)
	}
	copyFile(t, second.KeyFile, key)
	touch(t, key, now.Add(2*time.Minute))
	if got := served(); got != "first" {
		t.Fatalf("reloaded before the check interval passed: %q", got)
	}
	now = now.Add(2 * time.Second)
	if got := served(); got != "second" {
		t.Fatalf("after the update: serving %q, want second", got)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func touch(t *testing.T, path string, at time.Time) {
	t.Helper()
	if err := os.Chtimes(path, at, at); err != nil {
		t.Fatal(err)
	}
}
