package deploy

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/internal/testing/envoytest"
)

// examples/compose/envoy.yaml is envoy/ingress.yaml with other addresses and mutual TLS to rkms.
// These tests keep the two from drifting apart and run the conformance suite on the compose copy,
// with the certificates and JWKS that examples/compose/secrets.sh makes.

var update = flag.Bool("update", false, "rewrite examples/compose/envoy.yaml from envoy/ingress.yaml")

// composeEdits turn envoy/ingress.yaml into examples/compose/envoy.yaml: another header, no
// port or file markers, the listener on the container network, the app and rkms by compose
// service name, and envoy/README.md's mutual TLS block on the rkms cluster (rkms's certificate
// names "rkms"; secrets.sh makes the files at the block's paths, compose.yaml mounts them).
func composeEdits(t *testing.T) []composeEdit {
	t.Helper()
	mtls := strings.ReplaceAll(envoytest.ReadmeBlock(t, "envoy-rkms-mtls"), "rkms.internal", "rkms")
	return []composeEdit{
		{"# rkms ingress sidecar: client -> Envoy (ext_proc -> rkms) -> the application.\n#\n",
			"# Envoy for examples/compose: envoy/ingress.yaml (read it for why each setting is there) with the\n" +
				"# listener on the container network, the app and rkms reached by their compose service names,\n" +
				"# and mutual TLS to rkms (envoy/README.md, \"ext_proc over mutual TLS\"). secrets.sh makes the\n" +
				"# certificates and the JWKS that compose.yaml mounts.\n", 1},
		{"# Ports are marked with \"# port:NAME\" comments and the JWKS file with \"# file:jwks\";\n" +
			"# envoy.Render and envoy.RenderFiles replace them (see README.md):\n" +
			"#   admin 9901, listener 10000, app 8000, rkms 50051, jwks /etc/envoy/jwks.json.\n" +
			"# Everything listens on 127.0.0.1.\n", "", 1},
		{"{address: 127.0.0.1, port_value: 9901} # port:admin", "{address: 127.0.0.1, port_value: 9901}", 1},
		{"{address: 127.0.0.1, port_value: 10000} # port:listener", "{address: 0.0.0.0, port_value: 10000}", 1},
		{"{address: 127.0.0.1, port_value: 8000} # port:app", "{address: app, port_value: 8000}", 1},
		{"{address: 127.0.0.1, port_value: 50051} # port:rkms", "{address: rkms, port_value: 50051}", 1},
		{"filename: /etc/envoy/jwks.json # file:jwks", "filename: /etc/envoy/jwks.json", 1},
		{"      type: STATIC\n", "      type: STRICT_DNS\n", 2},
		{"      typed_extension_protocol_options:\n",
			"      # Mutual TLS: rkms requires it off loopback and takes route policies only from a verified peer.\n" +
				mtls + "      typed_extension_protocol_options:\n", 1},
	}
}

type composeEdit struct {
	old, new string
	n        int // occurrences of old
}

// TestComposeEnvoyIsIngress: examples/compose/envoy.yaml is envoy/ingress.yaml with the compose
// addresses and nothing else, so it has the same bypass protection and local replies.
// `go test ./deploy -run TestComposeEnvoyIsIngress -update` regenerates it.
func TestComposeEnvoyIsIngress(t *testing.T) {
	want := readRepoFile(t, "envoy/ingress.yaml")
	for _, e := range composeEdits(t) {
		if n := strings.Count(want, e.old); n != e.n {
			t.Fatalf("envoy/ingress.yaml has %d occurrences of %q, want %d: update composeEdits", n, e.old, e.n)
		}
		want = strings.ReplaceAll(want, e.old, e.new)
	}
	path := filepath.Join(testenv.RepoRoot(t), "examples", "compose", "envoy.yaml")
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := readRepoFile(t, "examples/compose/envoy.yaml")
	if got != want {
		gl, wl := strings.Split(got, "\n"), strings.Split(want, "\n")
		for i := 0; i < len(gl) && i < len(wl); i++ {
			if gl[i] != wl[i] {
				t.Fatalf("examples/compose/envoy.yaml line %d is %q, want %q (run go test ./deploy -run TestComposeEnvoyIsIngress -update)", i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("examples/compose/envoy.yaml has %d lines, want %d (run with -update)", len(gl), len(wl))
	}
}

// TestComposeEnvoyBypass runs examples/compose/envoy.yaml, moved to loopback ports, through the
// conformance suite, with the files secrets.sh makes: the fake rkms serves the script's rkms
// certificate and requires a client certificate of its CA, which Envoy presents.
func TestComposeEnvoyBypass(t *testing.T) {
	testenv.Integration(t)
	boot := readRepoFile(t, "examples/compose/envoy.yaml")
	sec := composeSecrets(t)
	render := func(t testing.TB, p envoytest.Ports, failureModeAllow bool) string {
		s := boot
		for old, port := range map[string]int{
			"{address: 127.0.0.1, port_value: 9901}": p.Admin,
			"{address: 0.0.0.0, port_value: 10000}":  p.Listener,
			"{address: app, port_value: 8000}":       p.App,
			"{address: rkms, port_value: 50051}":     p.Rkms,
		} {
			s = envoytest.ReplaceOnce(t, s, old, fmt.Sprintf("{address: 127.0.0.1, port_value: %d}", port))
		}
		// compose.yaml's mounts: the JWKS (here the tests' key), and secrets.sh's files.
		s = envoytest.ReplaceOnce(t, s, "filename: /etc/envoy/jwks.json", "filename: "+p.JWKS)
		for _, m := range composeMounts(t, "envoy") {
			if m.dst != "/etc/envoy/jwks.json" && m.dst != "/etc/envoy/envoy.yaml" {
				s = envoytest.ReplaceOnce(t, s, "{filename: "+m.dst+"}", "{filename: "+sec.path(t, m.src)+"}")
			}
		}
		if failureModeAllow {
			s = envoytest.ReplaceOnce(t, s, "failure_mode_allow: false", "failure_mode_allow: true")
		}
		return s
	}
	envoytest.Run(t, envoytest.Suite{Render: render, TaggedPrefix: "/patients", Policy: "patients", RkmsTLS: sec.rkmsServerTLS(t)})
}
