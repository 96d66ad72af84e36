package envoytest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rkms/rkms/internal/testing/env"
)

// ReadmeBlock returns the YAML block that follows the comment "<!-- NAME ..." in envoy/README.md:
// the tests run the blocks the README ships, not a copy of them.
func ReadmeBlock(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "envoy", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "<!-- "+name)
	if !ok {
		t.Fatalf("envoy/README.md lost its %q block marker", name)
	}
	_, rest, _ = strings.Cut(rest, "```yaml\n")
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatalf("envoy/README.md: no YAML block after %q", name)
	}
	return block
}

// ListenerMTLSBlock is the marker of envoy/README.md's downstream mutual TLS block ("Peer
// identity"): a transport_socket for the listener's filter chain, whose certificate files are
// marked "# file:listener_cert", "# file:listener_key" and "# file:clients_ca".
const ListenerMTLSBlock = "envoy-listener-mtls"

// WithListenerMTLS returns cfg (a shipped ingress or egress configuration) with README.md's
// downstream mutual TLS block in its listener's filter chain. The block's files are still to be
// rendered (envoy.RenderFiles).
func WithListenerMTLS(t testing.TB, cfg string) string {
	t.Helper()
	block := ReadmeBlock(t, ListenerMTLSBlock)
	const indent = "          "
	if !strings.HasPrefix(block, indent+"transport_socket:\n") {
		t.Fatalf("envoy/README.md %s block: want a transport_socket at the filter chain's indentation, got %q", ListenerMTLSBlock, block)
	}
	// YAML does not mind the order of a mapping's keys: the transport socket goes first.
	const chain = "      filter_chains:\n        - filters:\n"
	return ReplaceOnce(t, cfg, chain, "      filter_chains:\n        - "+strings.TrimPrefix(block, indent)+indent+"filters:\n")
}
