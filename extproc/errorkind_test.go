package extproc

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/extproc/jsonfield"
	"github.com/rkms/rkms/extproc/policy"
)

// TestErrorKind: each class of refusal BodyTransform.Apply returns has its name, wrapped or not.
func TestErrorKind(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&jsonfield.SyntaxError{Offset: 3, Msg: "invalid literal"}, "not_json"},
		{fmt.Errorf("key id source: %w", jsonfield.ErrInvalidJSON), "not_json"},
		{&jsonfield.SyntaxError{Offset: 3, Msg: "too deep", MaxDepth: 64}, "bad_input"},
		{&policy.Error{Reason: policy.MediaType, Msg: "not JSON"}, "not_json"},
		{&policy.Error{Reason: policy.BadInput, Msg: "tripwire"}, "bad_input"},
		{newError(kindBadInput, phaseRequest, "field $.ssn is already encrypted", nil), "bad_input"},
		{newError(kindTooLarge, phaseRequest, "more than 10 selected fields", nil), "too_large"},
		{fmt.Errorf("open: %w", envelope.ErrAuthentication), "auth"},
		{fmt.Errorf("get: %w", ErrKeyNotFound), "auth"},
		{fmt.Errorf("get: %w", ErrKeyUnavailable), "unavailable"},
		{context.DeadlineExceeded, "unavailable"},
		{fmt.Errorf("lookup: %w", ErrKeyUnknown), "key_unknown"},
		{&CreateLimitedError{RetryAfter: time.Second}, "key_limited"},
		{fmt.Errorf("computed: %w", ErrInvalidKeyID), "bad_input"},
		{errors.New("something else"), "internal"},
	}
	for _, tc := range tests {
		if got := ErrorKind(tc.err); got != tc.want {
			t.Errorf("ErrorKind(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}
