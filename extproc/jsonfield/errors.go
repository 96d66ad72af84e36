package jsonfield

import (
	"errors"
	"strconv"
)

// ErrInvalidJSON is wrapped by every error that reports a document which is not strict JSON
// (see the package documentation for exactly what is accepted). The concrete error is a
// [*SyntaxError] carrying the byte offset of the problem.
var ErrInvalidJSON = errors.New("invalid json")

// ErrInvalidSelector is wrapped by every error that reports a selector or field list that cannot be
// compiled. Errors about the syntax of one selector are [*SelectorError] values.
var ErrInvalidSelector = errors.New("invalid selector")

// SyntaxError reports where a document stopped being strict JSON. It unwraps to [ErrInvalidJSON].
//
// Msg never quotes bytes of the document: a broken document may hold a value that was meant to be
// encrypted, and error strings end up in logs.
type SyntaxError struct {
	Offset int    // byte offset in the document at which the problem was detected
	Msg    string // what is wrong, e.g. "invalid escape sequence in string"
}

func (e *SyntaxError) Error() string {
	return "invalid json at offset " + strconv.Itoa(e.Offset) + ": " + e.Msg
}

// Unwrap returns [ErrInvalidJSON].
func (e *SyntaxError) Unwrap() error { return ErrInvalidJSON }

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
