package extproc

import (
	"errors"
	"testing"
)

// TestProcErrorMessage: a refusal's message with and without a cause (a nil cause must not be
// dereferenced: most refusals have none).
func TestProcErrorMessage(t *testing.T) {
	if got := newError(kindBadInput, phaseRequest, "bad body", nil).Error(); got != "bad body" {
		t.Errorf("without a cause: %q", got)
	}
	cause := errors.New("the cause")
	e := newError(kindBadInput, phaseRequest, "bad body", cause)
	if got := e.Error(); got != "bad body: the cause" || !errors.Is(e, cause) {
		t.Errorf("with a cause: %q, unwraps to the cause: %v", got, errors.Is(e, cause))
	}
}
