package deploy

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rkms/rkms/internal/envoytest"
	"github.com/rkms/rkms/internal/testenv"
)

// examples/compose/envoy.yaml is envoy/ingress.yaml with other addresses. These tests keep the two
// from drifting apart and run the bypass conformance suite on the compose copy.

var update = flag.Bool("update", false, "rewrite examples/compose/envoy.yaml from envoy/ingress.yaml")

// composeEdits turn envoy/ingress.yaml into examples/compose/envoy.yaml: another header, no port
// markers, the listener on the container network, the app and rkms by compose service name.
var composeEdits = []struct {
	old, new string
	n        int // occurrences of old
}{
	{"# rkms ingress sidecar: client -> Envoy (ext_proc -> rkms) -> the application.\n#\n",
		"# Envoy for examples/compose: envoy/ingress.yaml (read it for why each setting is there) with the\n" +
			"# listener on the container network and the app and rkms reached by their compose service names.\n", 1},
	{"# Ports are marked with \"# port:NAME\" comments; envoy.Render replaces them (see README.md):\n" +
		"#   admin 9901, listener 10000, app 8000, rkms 50051. Everything listens on 127.0.0.1.\n", "", 1},
	{"{address: 127.0.0.1, port_value: 9901} # port:admin", "{address: 127.0.0.1, port_value: 9901}", 1},
	{"{address: 127.0.0.1, port_value: 10000} # port:listener", "{address: 0.0.0.0, port_value: 10000}", 1},
	{"{address: 127.0.0.1, port_value: 8000} # port:app", "{address: app, port_value: 8000}", 1},
	{"{address: 127.0.0.1, port_value: 50051} # port:rkms", "{address: rkms, port_value: 50051}", 1},
	{"      type: STATIC\n", "      type: STRICT_DNS\n", 2},
}

// TestComposeEnvoyIsIngress: examples/compose/envoy.yaml is envoy/ingress.yaml with the compose
// addresses and nothing else, so it has the same bypass protection and local replies.
// `go test ./deploy -run TestComposeEnvoyIsIngress -update` regenerates it.
func TestComposeEnvoyIsIngress(t *testing.T) {
	want := readRepoFile(t, "envoy/ingress.yaml")
	for _, e := range composeEdits {
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
// bypass conformance suite.
func TestComposeEnvoyBypass(t *testing.T) {
	testenv.Integration(t)
	boot := readRepoFile(t, "examples/compose/envoy.yaml")
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
		if failureModeAllow {
			s = envoytest.ReplaceOnce(t, s, "failure_mode_allow: false", "failure_mode_allow: true")
		}
		return s
	}
	envoytest.Run(t, envoytest.Suite{Render: render, TaggedPrefix: "/patients", Policy: "patients"})
}
