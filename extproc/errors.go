package extproc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"google.golang.org/grpc/codes"

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
	// names such a key fails like any ciphertext that does not open (authFailed).
	ErrKeyNotFound = errors.New("key not found")
	// ErrInvalidKeyID: the key id breaks the key id rule (1..256 bytes of [A-Za-z0-9._:/@+=-]).
	ErrInvalidKeyID = policy.ErrInvalidKeyID
	// ErrKeyUnknown: the key id has no key and the policy does not let requests create one
	// (Lookup, create: admin_only). The client gets 403. It is not ErrKeyNotFound: a
	// ciphertext naming a missing key fails like any other ciphertext that does not open
	// (authFailed), while sealing under a key nobody provisioned is a refusal
	// the client (and its operator) should see as such.
	ErrKeyUnknown = errors.New("key id unknown")
	// ErrKeyCreateLimited: the key would have to be created and the creation rate limit is
	// exhausted (Current). The client gets 429 with retry-after; see [CreateLimitedError].
	ErrKeyCreateLimited = errors.New("key creation rate limited")
	// ErrKeyRetired: the ciphertext's key version was retired on purpose (below the key's min
	// decrypt version, or destroyed). Version wraps it. The client gets 403 with the code
	// key_version_retired: unlike a ciphertext that does not open, this is an operator's
	// decision the client should see as such.
	ErrKeyRetired = errors.New("key version retired")
	// ErrKeySealLimit: the key version handed out may seal no more values ([SealCounter]);
	// the server takes the current key again once. A Keys implementation that cannot rotate
	// now wraps ErrKeyUnavailable as well (503).
	ErrKeySealLimit = errors.New("key version reached its seal limit")
)

// CreateLimitedError is how a [Keys] implementation reports [ErrKeyCreateLimited] with the
// delay after which a retry may succeed (retry-after, in whole seconds rounded up, at least 1).
type CreateLimitedError struct {
	RetryAfter time.Duration
	Err        error // the key service's own error, for logs; may be nil
}

func (e *CreateLimitedError) Error() string {
	msg := fmt.Sprintf("%v: retry after %s", ErrKeyCreateLimited, e.RetryAfter)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns ErrKeyCreateLimited and the cause.
func (e *CreateLimitedError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrKeyCreateLimited}
	}
	return []error{ErrKeyCreateLimited, e.Err}
}

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
	kindKeyUnknown              // no key for the id, and the policy does not create keys
	kindKeyLimited              // the key would be created, over the creation rate limit
	kindBusy                    // the client or tenant has its share of streams in flight
	kindOverloaded              // the memory budget cannot hold the body now
	kindKeyRetired              // a ciphertext's key version was retired (min decrypt version)
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
	retry  time.Duration // kindKeyLimited: when to retry
	reason string        // a limit's refusal reason (Refused*), "" for other errors
	// field is the path of the body value that failed ($.items[3].ssn), for logs only; record is
	// its first array index (the record's position in a list), -1 for none. See [procError.at].
	field  string
	record int
}

// at records, for the log, where in body the value that failed starts (err's
// [jsonfield.ValueError], if any). The client never sees it: the message stays the same for
// every field, so that a refusal does not tell which value or record failed.
func (e *procError) at(body []byte, err error) {
	var ve *jsonfield.ValueError
	if !errors.As(err, &ve) {
		return
	}
	sel, perr := jsonfield.SelectorAt(body, ve.Offset)
	if perr != nil {
		return
	}
	e.field, e.record = sel.String(), -1
	if ix := sel.Indexes(); len(ix) > 0 {
		e.record = ix[0]
	}
}

// logAttrs are the attributes of the refusal's log record besides its message.
func (e *procError) logAttrs(status int) []any {
	attrs := []any{"phase", e.phase.String(), "status", status, "reason", e.msg, "error", e.err}
	if e.field != "" {
		attrs = append(attrs, "field", e.field)
		if e.record >= 0 {
			attrs = append(attrs, "record", e.record)
		}
	}
	return attrs
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

// retryAfter is the retry-after of a refusal, whole seconds rounded up and at least one; 0 for
// refusals that have none.
func (e *procError) retryAfter() time.Duration {
	switch e.kind {
	case kindBusy, kindOverloaded: // streams and memory come back within the second
		return time.Second
	case kindKeyLimited:
	default:
		return 0
	}
	const maxRetry = time.Hour
	return min(maxRetry, max(time.Second, (e.retry+time.Second-1).Truncate(time.Second)))
}

// authFailed is the one message for every ciphertext that cannot be opened or used here: tampered,
// truncated, another tenant's, another field's, a key version that is gone. It says that data
// could not be read, not that the caller failed to log in, and it is the same for every cause and
// every field, so that it tells a client nothing about which one (the log says which field and
// record: [procError.at]).
const authFailed = "a stored field could not be decrypted (ciphertext authentication failed)"

// retiredMsg is the message of every field refused because its key version was retired. Like
// authFailed it names no field, key id or version.
const retiredMsg = "a stored field is encrypted under a retired key version: it can no longer be decrypted"

// RetiredCode is the JSON code of the refusal of a retired key version.
const RetiredCode = "key_version_retired"

// code is the JSON code of a refusal, "" for kinds that have none.
func (k kind) code() string {
	if k == kindKeyRetired {
		return RetiredCode
	}
	return ""
}

// tooDeepMsg says that the body of phase ph is nested deeper than the limit that err, wrapping
// jsonfield.ErrTooDeep, reports.
func tooDeepMsg(ph phase, err error) string {
	limit := jsonfield.DefaultMaxDepth
	if se := (*jsonfield.SyntaxError)(nil); errors.As(err, &se) && se.MaxDepth > 0 {
		limit = se.MaxDepth
	}
	return fmt.Sprintf("%s body is nested deeper than the JSON nesting limit (%d levels)", ph, limit)
}

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
	case kindKeyUnknown, kindKeyRetired: // either phase: a key decision, not the message wrong
		return http.StatusForbidden
	case kindKeyLimited, kindBusy:
		return http.StatusTooManyRequests
	default: // kindInternal, kindPolicy (kindProtocol never becomes an HTTP reply)
		return http.StatusInternalServerError
	}
}

// grpcCode is the gRPC status that ends an ext_proc stream whose streamed body failed after
// its headers went to the client (Envoy then resets the HTTP stream); the other place where an
// error class becomes a status.
func grpcCode(e *procError) codes.Code {
	switch e.kind {
	case kindBadInput, kindAuth, kindMediaType:
		return codes.InvalidArgument
	case kindTooLarge, kindOverloaded, kindBusy, kindKeyLimited:
		return codes.ResourceExhausted
	case kindUnavailable:
		return codes.Unavailable
	case kindKeyUnknown, kindKeyRetired:
		return codes.PermissionDenied
	default:
		return codes.Internal
	}
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
	case kindKeyUnknown:
		return "rkms_key_unknown"
	case kindKeyLimited:
		return "rkms_key_create_limited"
	case kindBusy:
		return "rkms_busy"
	case kindOverloaded:
		return "rkms_overloaded"
	case kindKeyRetired:
		return "rkms_key_version_retired"
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
	case errors.Is(err, ErrKeyUnknown):
		return newError(kindKeyUnknown, ph, "key id is unknown: its key must be created by an operator first", err)
	case errors.Is(err, ErrKeyCreateLimited):
		pe := newError(kindKeyLimited, ph, "key creation rate limit reached: retry later", err)
		pe.retry = time.Second
		if cle := (*CreateLimitedError)(nil); errors.As(err, &cle) {
			pe.retry = cle.RetryAfter
		}
		return pe
	case errors.Is(err, ErrKeyRetired):
		return newError(kindKeyRetired, ph, retiredMsg, err)
	case errors.Is(err, ErrKeyUnavailable), errors.Is(err, ErrKeySealLimit), errors.Is(err, context.DeadlineExceeded):
		return newError(kindUnavailable, ph, "key service unavailable", err)
	case errors.Is(err, ErrKeyNotFound),
		errors.Is(err, envelope.ErrAuthentication), errors.Is(err, envelope.ErrMalformed),
		errors.Is(err, envelope.ErrUnsupportedVersion), errors.Is(err, envelope.ErrKeyMismatch):
		return newError(kindAuth, ph, authFailed, err)
	case errors.Is(err, ErrInvalidKeyID):
		return newError(kindBadInput, ph, "computed key id is invalid", err)
	case errors.Is(err, jsonfield.ErrTooDeep):
		return newError(kindBadInput, ph, tooDeepMsg(ph, err), err)
	case errors.Is(err, jsonfield.ErrTooLarge):
		return newError(kindTooLarge, ph, ph.String()+" body holds a value or token longer than the streaming limit", err)
	case errors.Is(err, jsonfield.ErrInvalidJSON):
		return newError(kindBadInput, ph, ph.String()+" body is not valid JSON", err)
	case errors.Is(err, context.Canceled):
		return newError(kindUnavailable, ph, "request cancelled", err)
	default:
		return newError(kindInternal, ph, "internal error", err)
	}
}
