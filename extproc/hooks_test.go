package extproc_test

import (
	"github.com/rkms/rkms/extproc"
	"github.com/rkms/rkms/internal/keysource"
	"github.com/rkms/rkms/internal/testing/load"
	"github.com/rkms/rkms/keyring"
)

// Hooks for the tests of package extproc that need packages importing extproc (an import cycle
// from package extproc itself).
func init() {
	// The real-Envoy tests (stack_test.go) run the production key adapter.
	extproc.StackKeys = func(k *keyring.Keyring) extproc.Keys { return keysource.Keyring{K: k} }
	// BenchmarkEnvoy's baseline without ext_proc is rkms-load's configuration.
	extproc.WithoutExtProc = load.WithoutExtProc
}
