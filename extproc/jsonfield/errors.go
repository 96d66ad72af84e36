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
}

func (e *SyntaxError) Error() string {
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
	Offset   int       // byte offset in the document at which the value starts
	Err      error     // the function's error
}

func (e *ValueError) Error() string {
	return e.Op + " value selected by " + e.Selector.String() + " at offset " + strconv.Itoa(e.Offset) + ": " + e.Err.Error()
}

// Unwrap returns Err.
func (e *ValueError) Unwrap() error { return e.Err }
