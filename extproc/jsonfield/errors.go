package jsonfield

import (
	"errors"
	"strconv"
)

// ErrInvalidJSON is wrapped by every error that reports a document which is not strict JSON
// (see the package documentation for exactly what is accepted). The concrete error is a
// [*SyntaxError] carrying the byte offset of the problem.
var ErrInvalidJSON = errors.New("invalid json")

// ErrTooDeep is wrapped, besides [ErrInvalidJSON], by the error for a document nested deeper than
// the limit ([Options.MaxDepth], [DefaultMaxDepth] by default). Such a document may well be RFC 8259
// JSON; it is refused because of the limit, and the [*SyntaxError] says which limit in MaxDepth.
var ErrTooDeep = errors.New("json nesting too deep")

// ErrInvalidSelector is wrapped by every error that reports a selector or field list that cannot be
// compiled. Errors about the syntax of one selector are [*SelectorError] values.
var ErrInvalidSelector = errors.New("invalid selector")

// SyntaxError reports where a document stopped being strict JSON. It unwraps to [ErrInvalidJSON],
// and also to [ErrTooDeep] when MaxDepth is not 0.
//
// Msg never quotes bytes of the document: a broken document may hold a value that was meant to be
// encrypted, and error strings end up in logs.
type SyntaxError struct {
	Offset int    // byte offset in the document at which the problem was detected
	Msg    string // what is wrong, e.g. "invalid escape sequence in string"
	// MaxDepth is the nesting limit the document exceeds, when that is the problem; else 0.
	MaxDepth int
	// Line is, for a [Stream] in NDJSON mode, the 1-based number of the line that is not a JSON
	// value (Offset then counts from the start of the stream); else 0.
	Line int
}

func (e *SyntaxError) Error() string {
	if e.Line > 0 {
		return "invalid json on line " + strconv.Itoa(e.Line) + " at offset " + strconv.Itoa(e.Offset) + ": " + e.Msg
	}
	return "invalid json at offset " + strconv.Itoa(e.Offset) + ": " + e.Msg
}

// Unwrap returns [ErrInvalidJSON], and [ErrTooDeep] for a document over the nesting limit.
func (e *SyntaxError) Unwrap() []error {
	if e.MaxDepth > 0 {
		return []error{ErrInvalidJSON, ErrTooDeep}
	}
	return []error{ErrInvalidJSON}
}

// SelectorError reports a selector that does not follow the grammar in the package documentation.
// It unwraps to [ErrInvalidSelector].
type SelectorError struct {
	Selector string // the selector as given
	Offset   int    // byte offset in Selector at which the problem was detected
	Msg      string // what is wrong
}

func (e *SelectorError) Error() string {
	return "invalid selector " + strconv.Quote(e.Selector) + " at offset " + strconv.Itoa(e.Offset) + ": " + e.Msg
}

// Unwrap returns [ErrInvalidSelector].
func (e *SelectorError) Unwrap() error { return ErrInvalidSelector }

// ValueError is how [Plan.Rewrite], [Plan.RewriteChecked] and [Plan.Visit] return an error of their
// function for one value: it names the selector that matched the value and the value's offset in
// the document ([SelectorAt] turns the offset into the value's own path, $.items[3].ssn, for a
// log). It unwraps to Err.
type ValueError struct {
	Op       string    // "transform" or "visit"
	Selector *Selector // the selector that matched the value
	Offset   int       // byte offset in the document (or stream) at which the value starts
	Err      error     // the function's error
	Line     int       // for a [Stream] in NDJSON mode, the 1-based line of the value; else 0
}

func (e *ValueError) Error() string {
	at := " at offset " + strconv.Itoa(e.Offset)
	if e.Line > 0 {
		at = " on line " + strconv.Itoa(e.Line) + at
	}
	return e.Op + " value selected by " + e.Selector.String() + at + ": " + e.Err.Error()
}

// Unwrap returns Err.
func (e *ValueError) Unwrap() error { return e.Err }

// ErrTooLarge is wrapped by the [*LimitError] of a [Stream] that would have to hold more than
// its limits allow: a selected value longer than [StreamOptions.MaxValue], or an unfinished
// member name, held separator or checked string longer than [StreamOptions.MaxPending]. The
// document may well be valid JSON; it is refused because of the limit.
var ErrTooLarge = errors.New("json value too large to stream")

// LimitError reports where a [Stream] met more than it may hold. It unwraps to [ErrTooLarge].
// Like [SyntaxError], it never quotes document bytes.
type LimitError struct {
	Offset int    // offset in the stream of the first byte of what was being held
	What   string // "selected value" or "pending token"
	Limit  int    // the limit, in bytes
	Line   int    // in NDJSON mode, the 1-based line; else 0
}

func (e *LimitError) Error() string {
	at := "at offset " + strconv.Itoa(e.Offset)
	if e.Line > 0 {
		at = "on line " + strconv.Itoa(e.Line) + " " + at
	}
	return "json " + e.What + " " + at + " exceeds the stream limit of " + strconv.Itoa(e.Limit) + " bytes"
}

// Unwrap returns [ErrTooLarge].
func (e *LimitError) Unwrap() error { return ErrTooLarge }
