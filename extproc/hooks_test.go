package extproc_test

import (
	"github.com/rkms/rkms/extproc"
	"github.com/rkms/rkms/internal/keysource"
	"github.com/rkms/rkms/keyring"
)

// The real-Envoy tests of package extproc (stack_test.go) run the production key adapter.
func init() {
	extproc.StackKeys = func(k *keyring.Keyring) extproc.Keys { return keysource.Keyring{K: k} }
}
