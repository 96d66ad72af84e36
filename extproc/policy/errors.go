package policy

import (
	"fmt"

	"github.com/rkms/rkms/envelope"
)

// ErrInvalidKeyID: a key id breaks the key id rule ([envelope.ValidateKeyID], 1..256 bytes of
// [A-Za-z0-9._:/@+=-]). It is [envelope.ErrInvalidKeyID], the one error of that rule.
var ErrInvalidKeyID = envelope.ErrInvalidKeyID

// Reason says why a policy refuses a message. Callers branch on it to choose a status code.
type Reason uint8

const (
	// BadInput: the request (or, in a response, the upstream) sent something the policy
	// cannot use: a missing key id source, an ambiguous path, a tripwire.
	BadInput Reason = iota + 1
	// MediaType: the body is not JSON in UTF-8 without a content encoding.
	MediaType
)

// Error is a message that a policy refuses. Msg is safe to show to the HTTP client: it never
// holds a field value, a ciphertext or key material (a JSON path or a header name at most).
// Err is the cause, for logs; it may be nil.
type Error struct {
	Reason Reason
	Msg    string
	Err    error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Msg
	}
	return e.Msg + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

func badInput(format string, args ...any) *Error {
	return &Error{Reason: BadInput, Msg: fmt.Sprintf(format, args...)}
}

// maxPathInMsg bounds a JSON path quoted in an error message: member names are the client's.
const maxPathInMsg = 200

func shortPath(p string) string {
	if len(p) <= maxPathInMsg {
		return p
	}
	return p[:maxPathInMsg] + "..."
}
