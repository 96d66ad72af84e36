package keyring

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rkms/rkms/envelope"
)

// Errors returned by the keyring. Callers branch on them with errors.Is; only the edges (the
// ext_proc server, the admin API) turn them into status codes.
var (
	// ErrNotFound: no key exists for the id (GetVersion, Rotate, Delete), or the requested version
	// does not exist.
	ErrNotFound = errors.New("key not found")
	// ErrDeleted: the key id was deleted (its record is a tombstone, [store.Record.Deleted]).
	// It wraps [ErrNotFound], so callers that only know "not found" keep working; [Keyring.Get]
	// does not re-create such an id, only [Keyring.Create] with recreate does.
	ErrDeleted = fmt.Errorf("key deleted (re-create it explicitly): %w", ErrNotFound)
	// ErrExists: [Keyring.Create] of an id that already has a key.
	ErrExists = errors.New("key already exists")
	// ErrInvalidID: the key id breaks the key id rule ([ValidateID]). The caller's fault. It is
	// [envelope.ErrInvalidKeyID], the one error of that rule, under the keyring's name.
	ErrInvalidID = envelope.ErrInvalidKeyID
	// ErrUnavailable: too few KMS regions answered, or the store could not be reached. Retrying
	// later may succeed.
	ErrUnavailable = errors.New("key service unavailable")
	// ErrClosed: the keyring was closed. It also wraps [ErrUnavailable].
	ErrClosed = fmt.Errorf("keyring closed: %w", ErrUnavailable)
	// ErrCreateLimited: the key does not exist and this keyring created as many keys as
	// Options.CreateRate allows for now. It comes as a [*CreateLimitedError] that says when to
	// retry. It does not wrap ErrUnavailable: the key service is up, the caller asks too much.
	ErrCreateLimited = errors.New("key creation rate limit reached")
	// ErrVersionRetired: the key version exists (or existed) but may no longer be opened: it is
	// below the record's min decrypt version, retired, or destroyed
	// ([Keyring.SetMinDecryptVersion]). It does not wrap ErrNotFound: a caller must be able to
	// tell "this data was deliberately retired" from "no such key".
	ErrVersionRetired = errors.New("key version retired")
	// ErrSealLimit: the key version has used up the seals it may make
	// ([Options.MaxSeals]) and the keyring could not rotate it now. Get the current key again:
	// when rotation succeeded it is a new version. It wraps ErrUnavailable.
	ErrSealLimit = fmt.Errorf("key version reached its seal limit: %w", ErrUnavailable)
)

// CreateLimitedError is the error of a Get refused by the creation rate limit. errors.Is
// matches it with [ErrCreateLimited].
type CreateLimitedError struct {
	// RetryAfter is when the limiter will have a token again, rounded up to whole seconds and
	// at least one second (ready for a Retry-After header).
	RetryAfter time.Duration
}

func (e *CreateLimitedError) Error() string {
	return fmt.Sprintf("%v: retry after %s", ErrCreateLimited, e.RetryAfter)
}

func (e *CreateLimitedError) Unwrap() error { return ErrCreateLimited }

// Errors that [Region] implementations wrap so that the keyring can tell "try another region and
// count a failure against this one" from "this region answered and said no".
var (
	// ErrRegionUnavailable: the region could not be reached, did not answer in time, was
	// throttled or failed internally (5xx). The keyring falls back to another region and counts
	// the failure towards the region's circuit breaker.
	ErrRegionUnavailable = errors.New("kms region unavailable")
	// ErrRegionRejected: the region answered and refused the request (invalid ciphertext,
	// access denied, disabled key, ...). Retrying the same request in the same region will not
	// help. The keyring still tries other regions (each holds an independent copy), but the
	// failure does not count towards the breaker.
	ErrRegionRejected = errors.New("kms region rejected the request")
)

// errBreakerOpen is the cause recorded for a region that was skipped because its circuit breaker
// is open.
var errBreakerOpen = fmt.Errorf("%w: circuit breaker open", ErrRegionUnavailable)

// RegionError is one region's failure within a [RegionErrors].
type RegionError struct {
	Region string // region name
	Op     string // "generate data key", "encrypt", "decrypt"
	Err    error  // wraps ErrRegionUnavailable or ErrRegionRejected
}

func (e *RegionError) Error() string { return e.Op + " in " + e.Region + ": " + e.Err.Error() }

func (e *RegionError) Unwrap() error { return e.Err }

// RegionErrors aggregates the failures of every region tried for one operation when none
// succeeded (or too few did). errors.Is and errors.As see each region's cause through Unwrap.
type RegionErrors struct {
	Errors []*RegionError
}

func (e *RegionErrors) Error() string {
	if len(e.Errors) == 0 {
		return "no kms region configured for this operation"
	}
	var b strings.Builder
	for i, re := range e.Errors {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(re.Error())
	}
	return b.String()
}

// Unwrap returns each region's error.
func (e *RegionErrors) Unwrap() []error {
	out := make([]error, len(e.Errors))
	for i, re := range e.Errors {
		out[i] = re
	}
	return out
}

// add records a region failure.
func (e *RegionErrors) add(region, op string, err error) {
	e.Errors = append(e.Errors, &RegionError{Region: region, Op: op, Err: err})
}

// anyUnavailable reports whether at least one failure was an unavailability (so a retry later
// may succeed), or no region was tried at all.
func (e *RegionErrors) anyUnavailable() bool {
	if len(e.Errors) == 0 {
		return true
	}
	for _, re := range e.Errors {
		if errors.Is(re.Err, ErrRegionUnavailable) {
			return true
		}
	}
	return false
}

// classify wraps the aggregate so that callers can branch: ErrUnavailable when any region was
// unavailable (a retry may succeed), otherwise the aggregate alone (every region refused).
func (e *RegionErrors) classify(what string) error {
	if e.anyUnavailable() {
		return fmt.Errorf("%s: %w: %w", what, ErrUnavailable, e)
	}
	return fmt.Errorf("%s: %w", what, e)
}

// MaxIDLen is the longest valid key id, in bytes ([envelope.MaxKeyIDLen]).
const MaxIDLen = envelope.MaxKeyIDLen

// ValidateID reports whether id is a valid key id: 1 to 256 bytes, each one of
// A-Z a-z 0-9 and . _ : / @ + = -. The error wraps [ErrInvalidID]. The rule is
// [envelope.ValidateKeyID]'s (a key id must fit a ciphertext header); this is that function
// under the keyring's name, for callers that check an id before they call the keyring.
func ValidateID(id string) error { return envelope.ValidateKeyID(id) }
