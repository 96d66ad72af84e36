package extproc

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/extproc/jsonfield"
	"github.com/rkms/rkms/extproc/policy"
)

// Errors that a [Keys] implementation wraps so that the server can tell the client's fault from
// an outage. Any other error from Keys is treated as an internal error (500).
var (
	// ErrKeyUnavailable: the key service cannot serve the key right now (store or KMS down,
	// too few healthy regions, deadline exceeded). The client gets 503.
	ErrKeyUnavailable = errors.New("key unavailable")
	// ErrKeyNotFound: the key id or version does not exist (Version only). A ciphertext that
	// names such a key fails as "authentication failed".
	ErrKeyNotFound = errors.New("key not found")
	// ErrInvalidKeyID: the key id breaks the key id rule (1..256 bytes of [A-Za-z0-9._:/@+=-]).
	ErrInvalidKeyID = policy.ErrInvalidKeyID
)

// kind classifies what went wrong. Only [httpStatus] turns a kind into a status code.
type kind uint8

const (
	kindInternal    kind = iota // a bug or an unexpected dependency error
	kindBadInput                // the message body or headers are wrong (client or upstream)
	kindMediaType               // not JSON, or compressed
	kindTooLarge                // body over MaxBodyBytes
	kindAuth                    // a ciphertext failed to open or is not authorized here
	kindUnavailable             // the key service cannot answer now
	kindPolicy                  // the route names a policy this server does not have
	kindProtocol                // Envoy sent a message that breaks the ext_proc protocol
	kindBusy                    // the client or tenant has its share of streams in flight
	kindOverloaded              // the memory budget cannot hold the body now
)

// phase says which half of the exchange failed: the client's request or the upstream's response.
type phase uint8

const (
	phaseRequest phase = iota
	phaseResponse
)

func (p phase) String() string {
	if p == phaseResponse {
		return "response"
	}
	return "request"
}

// procError is the one error type the processor returns. msg is safe to show to the HTTP client:
// it never contains plaintext, ciphertext, key material or key ids. err is the cause, for logs.
type procError struct {
	kind   kind
	phase  phase
	msg    string
	err    error
	reason string // a limit's refusal reason (Refused*), "" for other errors
}

func (e *procError) Error() string {
	if e.err == nil {
		return e.msg
	}
	return e.msg + ": " + e.err.Error()
}

func (e *procError) Unwrap() error { return e.err }

func newError(k kind, ph phase, msg string, cause error) *procError {
	return &procError{kind: k, phase: ph, msg: msg, err: cause}
}

func protocolError(format string, args ...any) *procError {
	return &procError{kind: kindProtocol, msg: "ext_proc protocol violation", err: fmt.Errorf(format, args...), reason: RefusedProtocol}
}

// limitError is a refusal by one of the server's limits; reason is one of the Refused* values.
func limitError(k kind, ph phase, reason, msg string) *procError {
	return &procError{kind: k, phase: ph, msg: msg, reason: reason}
}

// authFailed is the one message for every ciphertext that cannot be opened or used here.
const authFailed = "authentication failed"

// httpStatus is the single place where error classes become HTTP status codes.
func httpStatus(e *procError) int {
	switch e.kind {
	case kindBadInput:
		if e.phase == phaseResponse {
			return http.StatusBadGateway
		}
		return http.StatusBadRequest
	case kindMediaType:
		if e.phase == phaseResponse {
			return http.StatusBadGateway
		}
		return http.StatusUnsupportedMediaType
	case kindTooLarge:
		if e.phase == phaseResponse {
			return http.StatusBadGateway
		}
		return http.StatusRequestEntityTooLarge
	case kindAuth:
		if e.phase == phaseResponse {
			return http.StatusBadGateway
		}
		return http.StatusBadRequest
	case kindUnavailable, kindOverloaded:
		return http.StatusServiceUnavailable
	case kindBusy:
		return http.StatusTooManyRequests
	default: // kindInternal, kindPolicy (kindProtocol never becomes an HTTP reply)
		return http.StatusInternalServerError
	}
}

// retryAfter is the retry-after header value (seconds) of a refusal that a client should try
// again later, or "" for the others.
func (k kind) retryAfter() string {
	if k == kindBusy || k == kindOverloaded {
		return "1"
	}
	return ""
}

// details is the Envoy response code detail for an error class (no spaces allowed there).
func (k kind) details() string {
	switch k {
	case kindBadInput:
		return "rkms_bad_input"
	case kindMediaType:
		return "rkms_media_type"
	case kindTooLarge:
		return "rkms_too_large"
	case kindAuth:
		return "rkms_authentication_failed"
	case kindUnavailable:
		return "rkms_key_unavailable"
	case kindPolicy:
		return "rkms_policy_error"
	case kindProtocol:
		return "rkms_protocol_error"
	case kindBusy:
		return "rkms_busy"
	case kindOverloaded:
		return "rkms_overloaded"
	default:
		return "rkms_internal_error"
	}
}

// classify turns an error from the transform (Keys, envelope, jsonfield, or a procError already)
// into a procError of the given phase.
func classify(ph phase, err error) *procError {
	var pe *procError
	var polErr *policy.Error
	switch {
	case errors.As(err, &pe):
		return pe
	case errors.As(err, &polErr):
		k := kindBadInput
		if polErr.Reason == policy.MediaType {
			k = kindMediaType
		}
		return newError(k, ph, polErr.Msg, polErr.Err)
	case errors.Is(err, policy.ErrUnknownPolicy):
		return newError(kindPolicy, phaseRequest, "policy configuration error", err)
	case errors.Is(err, ErrKeyUnavailable), errors.Is(err, context.DeadlineExceeded):
		return newError(kindUnavailable, ph, "key service unavailable", err)
	case errors.Is(err, ErrKeyNotFound),
		errors.Is(err, envelope.ErrAuthentication), errors.Is(err, envelope.ErrMalformed),
		errors.Is(err, envelope.ErrUnsupportedVersion), errors.Is(err, envelope.ErrKeyMismatch):
		return newError(kindAuth, ph, authFailed, err)
	case errors.Is(err, ErrInvalidKeyID):
		return newError(kindBadInput, ph, "computed key id is invalid", err)
	case errors.Is(err, jsonfield.ErrInvalidJSON):
		return newError(kindBadInput, ph, ph.String()+" body is not valid JSON", err)
	case errors.Is(err, context.Canceled):
		return newError(kindUnavailable, ph, "request cancelled", err)
	default:
		return newError(kindInternal, ph, "internal error", err)
	}
}
