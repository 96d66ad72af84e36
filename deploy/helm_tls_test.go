package deploy

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	envoycfg "github.com/rkms/rkms/envoy"
	"github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/internal/testing/envoytest"
)

// Without the sidecar, rkms's ext_proc listens on the pod network with mutual TLS, from
// certificates the chart generates (or cert-manager issues), behind a NetworkPolicy.

// noSidecar renders the chart without the Envoy sidecar.
func noSidecar(t *testing.T, args ...string) *rendered {
	t.Helper()
	return render(t, append([]string{"-f", filepath.Join(chartDir(t), "ci", "test-values.yaml"), "--set", "envoy.enabled=false"}, args...)...)
}

// keyPair returns the certificate and key of a kubernetes.io/tls Secret, and a pool of its ca.crt.
func keyPair(t *testing.T, s *corev1.Secret) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	if s == nil || s.Type != corev1.SecretTypeTLS {
		t.Fatalf("secret %v: want a kubernetes.io/tls Secret", s)
	}
	pair, err := tls.X509KeyPair(s.Data["tls.crt"], s.Data["tls.key"])
	if err != nil {
		t.Fatalf("secret %s: %v", s.Name, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.Data["ca.crt"]) {
		t.Fatalf("secret %s: no ca.crt", s.Name)
	}
	return pair, pool
}

// TestHelmExtProcTLS: the generated Secrets hold a server certificate for the Service's names and
// a client certificate, from one CA; a TLS server configured as rkms is from them (client
// certificates of ca.crt required) accepts the client Secret and refuses a client without one.
func TestHelmExtProcTLS(t *testing.T) {
	testenv.Integration(t) // helm
	r := noSidecar(t)
	server, serverCA := keyPair(t, r.secrets["rel-rkms-extproc-tls"])
	client, clientCA := keyPair(t, r.secrets["rel-rkms-extproc-client"])
	for _, name := range []string{"rel-rkms", "rel-rkms.enc", "rel-rkms.enc.svc", "rel-rkms.enc.svc.cluster.local"} {
		if err := server.Leaf.VerifyHostname(name); err != nil {
			t.Errorf("server certificate: %v", err)
		}
	}
	if !serverCA.Equal(clientCA) {
		t.Error("the two Secrets name different CAs")
	}

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	srvConf := &tls.Config{Certificates: []tls.Certificate{server}, ClientCAs: serverCA, ClientAuth: tls.RequireAndVerifyClientCert}
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := tls.Server(c, srvConf)
				if tc.Handshake() == nil {
					_, _ = io.WriteString(tc, "ok")
				}
			}()
		}
	}()
	dial := func(certs ...tls.Certificate) error {
		c, err := tls.Dial("tcp", lis.Addr().String(), &tls.Config{RootCAs: clientCA, ServerName: "rel-rkms.enc.svc", Certificates: certs})
		if err != nil {
			return err
		}
		defer c.Close()
		b, err := io.ReadAll(c)
		if err == nil && string(b) != "ok" {
			err = fmt.Errorf("read %q", b)
		}
		return err
	}
	if err := dial(client); err != nil {
		t.Errorf("the client Secret's certificate: %v", err)
	}
	if err := dial(); err == nil {
		t.Error("a client without a certificate got through")
	}

	// Each render makes a new CA (helm template cannot look up the live Secrets); on a cluster
	// lookup keeps the first ones.
	if again := noSidecar(t); string(again.secrets["rel-rkms-extproc-tls"].Data["ca.crt"]) == string(r.secrets["rel-rkms-extproc-tls"].Data["ca.crt"]) {
		t.Error("two renders made the same CA")
	}
}

// TestHelmExtProcTLSEnvoy runs envoy/ingress.yaml with envoy/README.md's mutual TLS block for the
// rkms cluster, holding the chart's client Secret, through the conformance suite against a
// stand-in rkms that serves the chart's server Secret and requires client certificates of its CA:
// what NOTES.txt tells an operator to do works in the real Envoy.
func TestHelmExtProcTLSEnvoy(t *testing.T) {
	testenv.Integration(t)
	r := noSidecar(t)
	server, ca := keyPair(t, r.secrets["rel-rkms-extproc-tls"])
	dir := t.TempDir()
	files := map[string]string{}
	for _, f := range []string{"tls.crt", "tls.key", "ca.crt"} {
		files[f] = filepath.Join(dir, f)
		if err := os.WriteFile(files[f], r.secrets["rel-rkms-extproc-client"].Data[f], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	block := strings.NewReplacer("/etc/envoy/tls/rkms-client.pem", files["tls.crt"], "/etc/envoy/tls/rkms-client-key.pem", files["tls.key"],
		"/etc/envoy/tls/rkms-ca.pem", files["ca.crt"], "rkms.internal", "rel-rkms.enc.svc").Replace(envoytest.ReadmeBlock(t, "envoy-rkms-mtls"))
	render := func(t testing.TB, p envoytest.Ports, failureModeAllow bool) string {
		cfg, err := envoycfg.Config("ingress.yaml")
		if err != nil {
			t.Fatal(err)
		}
		cfg, err = envoycfg.Render(cfg, map[string]int{"admin": p.Admin, "listener": p.Listener, "app": p.App, "rkms": p.Rkms})
		if err == nil {
			cfg, err = envoycfg.RenderFiles(cfg, map[string]string{"jwks": p.JWKS})
		}
		if err != nil {
			t.Fatal(err)
		}
		s := envoytest.ReplaceOnce(t, string(cfg), "      typed_extension_protocol_options:\n", block+"      typed_extension_protocol_options:\n")
		if failureModeAllow {
			s = envoytest.ReplaceOnce(t, s, "failure_mode_allow: false", "failure_mode_allow: true")
		}
		return s
	}
	envoytest.Run(t, envoytest.Suite{Render: render, TaggedPrefix: "/patients", Policy: "patients",
		RkmsTLS: &tls.Config{Certificates: []tls.Certificate{server}, ClientCAs: ca, ClientAuth: tls.RequireAndVerifyClientCert}})
}

// TestHelmExtProcCertManager: with extprocTLS.source: cert-manager the chart asks cert-manager for
// the same two Secrets, from a self-signed CA of its own or the issuer given.
func TestHelmExtProcCertManager(t *testing.T) {
	testenv.Integration(t)
	spec := func(r *rendered, key string) map[string]any {
		o := r.certManager[key]
		if o == nil {
			t.Fatalf("no %s among %v", key, mapsKeys(r.certManager))
		}
		return o["spec"].(map[string]any)
	}
	r := noSidecar(t, "--set", "extprocTLS.source=cert-manager")
	if len(r.certManager) != 5 || r.secrets["rel-rkms-extproc-tls"] != nil || r.secrets["rel-rkms-extproc-client"] != nil {
		t.Errorf("cert-manager objects %v, generated Secrets %v: want 2 issuers, 3 certificates and no generated Secret",
			mapsKeys(r.certManager), mapsKeys(r.secrets))
	}
	if ca := spec(r, "Certificate/rel-rkms-extproc-ca"); ca["isCA"] != true {
		t.Errorf("CA certificate %v", ca)
	}
	srv, cli := spec(r, "Certificate/rel-rkms-extproc-tls"), spec(r, "Certificate/rel-rkms-extproc-client")
	wantIssuer := map[string]any{"name": "rel-rkms-extproc-ca", "kind": "Issuer"}
	if srv["secretName"] != "rel-rkms-extproc-tls" || fmt.Sprint(srv["usages"]) != "[digital signature server auth]" ||
		!slices.Contains(srv["dnsNames"].([]any), "rel-rkms.enc.svc") || fmt.Sprint(srv["issuerRef"]) != fmt.Sprint(wantIssuer) {
		t.Errorf("server certificate %v", srv)
	}
	if cli["secretName"] != "rel-rkms-extproc-client" || fmt.Sprint(cli["usages"]) != "[digital signature client auth]" ||
		fmt.Sprint(cli["issuerRef"]) != fmt.Sprint(wantIssuer) {
		t.Errorf("client certificate %v", cli)
	}
	rk := container(t, r.deployment, "rkms")
	mounted := slices.ContainsFunc(rk.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == "extproc-tls" })
	if !mounted || !strings.Contains(r.configMaps["rel-rkms"].Data["rkms.yaml"], "client_ca_file: /etc/rkms/extproc-tls/ca.crt") {
		t.Errorf("rkms does not use cert-manager's Secret (mounted %v)", mounted)
	}

	r = noSidecar(t, "--set", "extprocTLS.source=cert-manager", "--set", "extprocTLS.certManager.issuerRef.name=corp-ca",
		"--set", "extprocTLS.certManager.issuerRef.kind=ClusterIssuer")
	if len(r.certManager) != 2 || fmt.Sprint(spec(r, "Certificate/rel-rkms-extproc-tls")["issuerRef"]) != fmt.Sprint(map[string]any{"name": "corp-ca", "kind": "ClusterIssuer"}) {
		t.Errorf("with an issuer given: %v", mapsKeys(r.certManager))
	}

	// source: none leaves the certificates to the user, or the risk to config.extproc.insecure.
	r = noSidecar(t, "--set", "extprocTLS.source=none", "--set", "config.extproc.insecure=true")
	if len(r.certManager) != 0 || r.secrets["rel-rkms-extproc-tls"] != nil || !strings.Contains(r.configMaps["rel-rkms"].Data["rkms.yaml"], "insecure: true") {
		t.Errorf("source none: cert-manager %v, secrets %v", mapsKeys(r.certManager), mapsKeys(r.secrets))
	}
}

func mapsKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestHelmNetworkPolicy: the pods admit ext_proc (without the sidecar) and the key API only from
// the configured peers, the admin API and the gateway from anywhere unless restricted, and
// nothing else.
func TestHelmNetworkPolicy(t *testing.T) {
	testenv.Integration(t)
	values := filepath.Join(chartDir(t), "ci", "test-values.yaml")
	type rule struct {
		port string
		from string // "" = anyone
	}
	rules := func(np *networkingv1.NetworkPolicy) []rule {
		var out []rule
		for _, in := range np.Spec.Ingress {
			if len(in.Ports) != 1 {
				t.Fatalf("ingress rule %v: want one port", in)
			}
			var from []string
			for _, p := range in.From {
				from = append(from, p.String())
			}
			out = append(out, rule{in.Ports[0].Port.String(), strings.Join(from, ";")})
		}
		return out
	}
	for _, tc := range []struct {
		name string
		args []string
		want map[string]string // port -> from ("" anyone); ports not listed are refused
	}{
		{"sidecar", []string{"-f", values}, map[string]string{"admin": "", "keyapi": "admin-client", "http": ""}},
		{"no sidecar", []string{"-f", values, "--set", "envoy.enabled=false"}, map[string]string{"admin": "", "keyapi": "admin-client", "extproc": "extproc-client"}},
		{"restricted admin", []string{"-f", values, "--set", "envoy.enabled=false", "--set-json",
			`networkPolicy.adminFrom=[{"namespaceSelector":{"matchLabels":{"name":"monitoring"}}}]`},
			map[string]string{"admin": "monitoring", "keyapi": "admin-client", "extproc": "extproc-client"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := render(t, tc.args...)
			np := r.netpol
			if np == nil || !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
				t.Fatalf("network policy %v: want one for ingress", np)
			}
			for k, v := range r.deployment.Spec.Template.Labels {
				if np.Spec.PodSelector.MatchLabels[k] != v && r.deployment.Spec.Selector.MatchLabels[k] == v {
					t.Errorf("the policy does not select the pods (label %s)", k)
				}
			}
			got := rules(np)
			if len(got) != len(tc.want) {
				t.Fatalf("rules %v, want ports %v", got, tc.want)
			}
			podPorts := map[string]bool{}
			for _, c := range r.deployment.Spec.Template.Spec.Containers {
				for _, p := range c.Ports {
					podPorts[p.Name] = true
				}
			}
			for _, g := range got {
				want, ok := tc.want[g.port]
				switch {
				case !ok || !podPorts[g.port]:
					t.Errorf("rule for port %q: not expected, or not a port of the pod (%v)", g.port, podPorts)
				case want == "" && g.from != "":
					t.Errorf("port %s admits only %s, want anyone", g.port, g.from)
				case want != "" && (g.from == "" || !strings.Contains(g.from, want)):
					t.Errorf("port %s admits %q, want only %q", g.port, g.from, want)
				}
			}
		})
	}
	if r := render(t, "-f", values, "--set", "networkPolicy.enabled=false"); r.netpol != nil {
		t.Error("networkPolicy.enabled=false still renders one")
	}
}
