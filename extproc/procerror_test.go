package extproc

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rkms/rkms/extproc/jsonfield"
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

// TestClassifyJSON: a body over the nesting limit is told apart from one that is not JSON, in
// both phases, and keeps its cause for errors.Is.
func TestClassifyJSON(t *testing.T) {
	deep := []byte(strings.Repeat("[", jsonfield.DefaultMaxDepth+1) + strings.Repeat("]", jsonfield.DefaultMaxDepth+1))
	own, err := jsonfield.NewPlan(nil, jsonfield.Options{MaxDepth: 5})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name       string
		err        error
		ph         phase
		wantStatus int
		wantMsg    string
		wantIs     error
	}{
		{"deep request", jsonfield.Validate(deep), phaseRequest, 400,
			"request body is nested deeper than the JSON nesting limit (1000 levels)", jsonfield.ErrTooDeep},
		{"deep response", fmt.Errorf("rewrite: %w", jsonfield.Validate(deep)), phaseResponse, 502,
			"response body is nested deeper than the JSON nesting limit (1000 levels)", jsonfield.ErrTooDeep},
		{"own limit", own.Validate([]byte(`[[[[[[1]]]]]]`)), phaseRequest, 400,
			"request body is nested deeper than the JSON nesting limit (5 levels)", jsonfield.ErrTooDeep},
		{"not json", jsonfield.Validate([]byte(`{"a":`)), phaseRequest, 400,
			"request body is not valid JSON", jsonfield.ErrInvalidJSON},
		{"not json response", jsonfield.Validate([]byte(`{"a":`)), phaseResponse, 502,
			"response body is not valid JSON", jsonfield.ErrInvalidJSON},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pe := classify(tt.ph, tt.err)
			if got := httpStatus(pe); got != tt.wantStatus || pe.msg != tt.wantMsg {
				t.Errorf("got %d %q, want %d %q", got, pe.msg, tt.wantStatus, tt.wantMsg)
			}
			if !errors.Is(pe, tt.wantIs) {
				t.Errorf("%v does not wrap %v", pe, tt.wantIs)
			}
		})
	}
}
