package envoy

import (
	"crypto/tls"
	"net/http"
	"strings"
	"testing"

	"github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/internal/testing/envoytest"
	"github.com/rkms/rkms/internal/testing/tlstest"
)

// The peer identity of README.md ("Peer identity") in the real Envoy: ingress.yaml with the
// README's downstream mutual TLS block hands rkms the client certificate's first URI and DNS
// SANs as ext_proc attributes, and refuses a client without a certificate from the trusted CA.
// extproc/envoy_identity_test.go runs the same block with the real rkms ({peer:...} key ids).

const (
	peerURI = "spiffe://example.org/ns/shop/sa/orders"
	peerDNS = "orders.shop.svc"
)

// mtlsListener renders ingress.yaml with README.md's listener block and these certificates.
func mtlsListener(server tlstest.Pair, clientsCA string) envoytest.Render {
	return ingress(func(t testing.TB, cfg string) string {
		out, err := RenderFiles([]byte(envoytest.WithListenerMTLS(t, cfg)), map[string]string{
			"listener_cert": server.CertFile, "listener_key": server.KeyFile, "clients_ca": clientsCA})
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	})
}

func TestIngressPeerIdentity(t *testing.T) {
	testenv.Integration(t)
	ca := tlstest.NewCA(t, "clients and listener")
	client := ca.ClientSANs(t, "orders", []string{peerURI, "spiffe://example.org/second"}, []string{peerDNS, "second.shop.svc"})
	clientTLS := tlstest.ClientConfig(ca.Pool(), client.TLS)
	st := envoytest.StartConfig(t, envoytest.Config{Render: mtlsListener(ca.Server(t, "envoy"), ca.File), ClientTLS: clientTLS})

	r := st.Do(t, "GET", "/patients/1", "", "X-Forwarded-Client-Cert", "URI=spiffe://example.org/ns/shop/sa/admin")
	if r.Status != 200 {
		t.Fatalf("GET over mutual TLS: %d %s", r.Status, r.Body)
	}
	s, _ := st.Rkms.Last("/patients/1")
	if s.Attributes[envoytest.AttrPeerURISAN] != peerURI || s.Attributes[envoytest.AttrPeerDNSSAN] != peerDNS {
		t.Errorf("ext_proc attributes %v, want the first URI SAN %q and DNS SAN %q", s.Attributes, peerURI, peerDNS)
	}
	// A client's own claim of a certificate is removed (HCM forward_client_cert_details: SANITIZE).
	if got := s.Headers["x-forwarded-client-cert"]; got != nil {
		t.Errorf("a client-sent x-forwarded-client-cert reached ext_proc: %q", got)
	}

	// Without a certificate from the clients' CA there is no request at all.
	alien := tlstest.NewCA(t, "another CA").Client(t, "intruder")
	for name, certs := range map[string][]tls.Certificate{"no certificate": nil, "another CA's certificate": {alien.TLS}} {
		n := len(st.Rkms.Streams())
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: tlstest.ClientConfig(ca.Pool(), certs...)}}
		resp, err := c.Get(st.URL("/patients/1"))
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s: %s, want the handshake refused", name, resp.Status)
		}
		if len(st.Rkms.Streams()) != n {
			t.Errorf("%s: ext_proc streams opened", name)
		}
	}
}

// TestIngressNoPeerIdentity: on the shipped plaintext listener the attributes carry no peer
// identity (so a {peer:...} key id has no source and rkms refuses), and no header can supply
// one.
func TestIngressNoPeerIdentity(t *testing.T) {
	testenv.Integration(t)
	st := envoytest.Start(t, ingress(nil), false)
	r := st.Do(t, "GET", "/patients/1", "", "X-Forwarded-Client-Cert", "URI="+peerURI+";DNS="+peerDNS)
	if r.Status != 200 {
		t.Fatalf("GET: %d %s", r.Status, r.Body)
	}
	s, _ := st.Rkms.Last("/patients/1")
	for k, v := range s.Attributes {
		if strings.Contains(k, "peer") || v == peerURI || v == peerDNS {
			t.Errorf("plaintext listener: attribute %s = %v", k, v)
		}
	}
	if got := s.Headers["x-forwarded-client-cert"]; got != nil {
		t.Errorf("a client-sent x-forwarded-client-cert reached ext_proc: %q", got)
	}
}
