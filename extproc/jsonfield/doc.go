// Package jsonfield finds values in a JSON document with a small subset of JSONPath and rewrites
// them in place, validating the whole document as strict JSON in the same single pass.
//
// It is the JSON layer of the rkms ext_proc filter: the filter compiles the selectors of a policy
// into a [Plan] once, and for every body calls [Plan.Rewrite] with a function that encrypts (or
// decrypts) the raw text of each selected value. Every byte outside the selected values (white
// space, key order, duplicate keys, number spelling, string escapes) is copied unchanged.
// [Plan.Visit] applies the same validation and selection to read values without copying.
// [Plan.RewriteChecked] and [Plan.Inspect] add a guard pass that shows the caller every string
// left outside the selected values, so that a policy can refuse a body before anything is
// transformed; [PathAt], [Plan.Selects] and [Selector.Covers] serve the same policies.
//
// # Selectors
//
// A selector is a path from the root of the document. Grammar (ABNF, RFC 5234; no white space is
// allowed anywhere):
//
//	selector   = "$" *segment
//	segment    = member / descendant / wildcard / index
//	member     = "." name / "[" quoted "]"
//	descendant = ".." name / "..[" quoted "]"
//	wildcard   = "[*]"
//	index      = "[" ( "0" / %x31-39 *DIGIT ) "]"     ; at most 2147483647
//	name       = 1*( ALPHA / DIGIT / "_" / "-" )       ; ASCII only
//	quoted     = "'" *( qchar / escape / DQUOTE ) "'"
//	           / DQUOTE *( qchar / escape / "'" ) DQUOTE
//	qchar      = any Unicode scalar value except ', ", \ and U+0000..U+001F, as UTF-8
//	escape     = "\" ( "\" / "'" / DQUOTE / "/" / "b" / "f" / "n" / "r" / "t" / "u" 4HEXDIG )
//
// \u escapes work as in JSON: a surrogate pair stands for one character, and an unpaired surrogate
// is an error. The segments mean:
//
//   - $ is the whole document. Alone, it selects the top-level value.
//   - .name and ['name'] select the member called name of an object. Names are compared with the
//     decoded member names of the document, so $.ssn matches "ssn" and "s\u0073n" alike, and
//     ['a b'] matches "a b". Comparison is by code points, without Unicode normalization; set
//     [Options.FoldCase] to compare under simple case folding instead.
//   - [*] selects every element of an array and every member value of an object.
//   - [N] selects element N (counted from 0) of an array. Negative indexes are not supported:
//     the document is streamed, so the length of an array is not known when its elements pass.
//   - ..name selects every member called name of the current value and of all values below it,
//     at any depth. $..ssn finds "ssn" members anywhere in the document.
//
// A segment that does not apply (.name on an array, [N] on an object, anything on a string)
// selects nothing; so does a member or index that is absent. Anything outside the grammar is
// rejected by [ParseSelector] with a [*SelectorError] that names the byte offset of the problem.
// [Selector.String] prints the canonical form: .name when the name fits the name rule, otherwise
// ['...'] escaping only ', \ and control characters.
//
// # Labels
//
// A [Field] pairs a selector with a label, which jsonfield only hands back to the transform
// function (rkms binds it into the ciphertext). [Selector.DefaultLabel] is the last member name
// of the selector: "ssn" for $.ssn, $..ssn and $.items[*].ssn. A selector that ends with [*] or
// [N], or is just $, has no default label: DefaultLabel returns "" and the caller must choose one.
//
// # Selection rules
//
//   - Every value reached by some selector is selected, including each occurrence of a duplicate
//     key (the application might use either one).
//   - The outermost selection wins: a selected value is passed whole to the transform and is not
//     searched for further selections, though it is still validated. With $.a and $..b, the
//     document {"a":{"b":1},"b":2} yields two values: {"b":1} and 2.
//   - When several fields select the same value, the first in the field list wins.
//
// # Guard pass
//
// A policy may want to refuse a body rather than transform it: when it carries a member that
// should have been encrypted but that no selector reaches (a sensitive name at an unexpected
// place), or a string that looks like a ciphertext where none belongs. [Plan.RewriteChecked]
// (and [Plan.Inspect], which rewrites nothing) call a check function for every string of the
// document outside the selected values: every member name and every string value, in document
// order, each as an [Outside] with the offset of its opening quote and its decoded text (escapes
// decoded as for matching member names, unpaired surrogates as U+FFFD; not case-folded: see
// [Fold]). For a member name, [Outside.Covered] says whether the member's value is itself a
// selected value. Strings inside selected values are never shown: they are transformed whole.
//
// The check runs once the whole document is known to be valid and the selected values are known,
// and before the transform is first called; an error from it is returned wrapped, with the offset
// and kind of the string but never its text, and nothing is transformed. A plan without fields
// (NewPlan(nil, opts)) selects nothing, so its Inspect shows every string of the document.
//
// # Paths
//
// [PathAt] names what starts at an offset of a document (a value, or a member by the offset of
// its name) by its canonical path, printed like [Selector.String]: $.contact[0].email, $[2].ssn,
// $['a b'].x. [Plan.Selects] tells whether the value at an offset is selected or inside a
// selected value. Both validate and walk the whole document and allocate: they are meant for the
// rare request that a guard refuses, to name the offending member or to let a policy allow it.
//
// # Containment
//
// [Selector.Covers] reports whether one selector selects every value another selects, in every
// document (optionally with member names compared as under [Options.FoldCase]), so that a policy
// can tell when it is loaded that a field already covers a label. It is exact for the selectors
// policies use and never wrong when it says yes; it says no when a comparison would take too
// long (see its documentation). It compares selected values, not their contents: $.a does not
// cover $.a.b.
//
// # Strict JSON
//
// Rewrite and [Validate] accept exactly the JSON texts of RFC 8259: one value with optional white
// space (space, tab, line feed, carriage return) around it; no byte order mark, comments or
// trailing commas; strings without raw control characters, with only the escapes \" \\ \/ \b \f
// \n \r \t and \uXXXX, and in valid UTF-8; numbers of the form -?(0|[1-9][0-9]*)(.[0-9]+)?
// ([eE][+-]?[0-9]+)?; the literals true, false and null. Unpaired surrogate escapes such as
// "\ud800" are accepted, as the grammar allows (they decode to U+FFFD when a member name is
// compared, as in encoding/json). Nesting is limited to [Options.MaxDepth] objects and arrays
// ([DefaultMaxDepth], 1000) so that hostile input costs no more than its size; the parser keeps
// an explicit stack and never recurses.
//
// This matches [encoding/json.Valid] exactly except in two ways: jsonfield rejects invalid UTF-8
// (encoding/json accepts it inside strings), and its nesting limit is lower (encoding/json allows
// 10000). The conformance and fuzz tests check precisely this.
//
// # Streaming
//
// [Plan.NewStream] returns a [Stream]: the same rewrite, with the same selectors, check and
// transform, for a body that arrives in chunks and must not be held whole (a large body, or
// NDJSON). [Stream.Write] appends to its dst the output that may be forwarded now and
// [Stream.Close] the rest; whatever the chunking, the concatenated output is exactly what
// [Plan.RewriteChecked] returns for the whole input, the transform sees the same values and the
// check the same strings (with [StreamOptions].NDJSON: for each line, and offsets counted from
// the start of the stream). FuzzStream checks this against RewriteChecked with random chunkings.
//
// What a stream holds is bounded: the selected value being read, until it is complete (at most
// [StreamOptions].MaxValue bytes), and at most [StreamOptions].MaxPending bytes that cannot be
// forwarded yet: a member name of an object that a selector reaches, until its selection is
// known; when the plan has Remove fields, the comma before such a member and the white space
// around it, until the member is known to stay; with a check function, each string outside
// the selected values, until it has been checked. Everything else (long strings and numbers
// included) is forwarded as soon as it is known to lie outside the selected values and to be
// valid so far, in the Write that brings it. [Stream.Held] reports what is held, for a memory
// budget. More than the limits allow is refused with a [*LimitError] wrapping [ErrTooLarge].
//
// What differs from the buffered path follows from not holding the document:
//
//   - The stream forwards the start of a document before it has seen the end, so an invalid
//     document is found invalid only after its valid prefix (with the transformed values up to
//     there) was returned. A selected value's own bytes are never returned, only the
//     transform's result for the complete value, and the transform is never called with a
//     value that is not complete and valid. A caller that must not deliver a partial document
//     must abort the whole message on an error (for a proxy: reset the stream).
//   - The check is called for each string as soon as it is complete (before it is forwarded),
//     and the transform for each value as soon as it is complete, interleaved in document
//     order, rather than all checks of the document before any transform (an NDJSON line that
//     arrives whole in one chunk is rewritten by the buffered path: its checks then come before
//     its transforms). An error from either stops the stream.
//   - Errors carry offsets from the start of the stream. A [*SyntaxError] is the one Rewrite
//     reports for the same document (the same offset and message), unless a check or transform
//     error came first; in NDJSON mode it also names the line ([SyntaxError].Line, in its
//     message), as do [*ValueError], [*LimitError] and the check's wrapped error.
//   - After an error, the stream is dead: Write and Close return the same error and nothing else.
//     The failing call returns dst unchanged and clears what it had appended.
//
// In NDJSON mode every line feed ends a line, and each line must be one JSON value with optional
// white space: a line feed inside a value, even where JSON allows white space, makes the line
// incomplete. A line of nothing but white space (an empty line, or a CR before the line feed) is
// copied as it is, and a carriage return before a line feed is white space after the value, so
// CRLF line ends are kept. The selectors apply to each line's top-level value afresh; [Stream.Close]
// fails when the last line (one not ended by a line feed) is not blank and not a complete value.
// JSON text sequences (RFC 7464, records introduced by U+001E) are not accepted.
//
// Performance: the parser is a resumable state machine, but whatever lies whole in the chunk at
// hand is left to the buffered scanner: a container no selector looks into, a string, number or
// literal, and in NDJSON mode a whole line (no longer than the limits), which is rewritten by
// the buffered path. Unselected bytes are copied in bulk. On a 10 MiB document in 64 KiB chunks
// the stream runs at about twice json.Valid's throughput, on NDJSON at about json.Valid's, and
// at about 0.9 times with a check function called for every string (BenchmarkStreamRatio;
// figures in BENCHMARKS.md). A Stream allocates its scratch once and
// then only to grow its buffers.
//
// # Failure behaviour
//
// Invalid documents give a [*SyntaxError] wrapping [ErrInvalidJSON] with the byte offset at which
// the problem was found (a document nested deeper than the limit also wraps [ErrTooDeep], with the
// limit in [SyntaxError].MaxDepth); its message never quotes document bytes, which could belong to a value
// meant to be encrypted. The transform function is called only after the whole document has been
// validated, so an invalid document never reaches it (nor the check function of the guard pass),
// and on any error Rewrite appends nothing to dst. An error from the transform or from the check
// stops the rewrite and is returned wrapped (errors.Is and errors.As see it). The transform's output is trusted: it is written as is, not validated, so it
// must itself be valid JSON text if the result is to be.
//
// # Performance
//
// Rewrite makes one pass over the document. The selectors are compiled into an automaton (a trie
// of steps, in which each recursive descent is a state that stays active below the point where it
// starts); the scanner keeps the set of active states per open container and descends with it
// only where some state is active. Elsewhere a tight validating scanner skips the value, reading
// plain string bytes eight at a time, and unchanged bytes are copied in bulk between selected
// values. The cost of matching is one map lookup per member name and active state at the levels
// a selector can reach; selectors that share a prefix share states, so the cost does not grow with
// the number of selectors. A descent selector (..name) keeps a state active in everything below
// the point where it starts, so every member name there costs a lookup. [Plan.Rewrite] allocates
// nothing beyond growing dst (scratch memory is pooled per Plan); the package-level [Rewrite]
// compiles its fields on every call, which costs a few small allocations.
//
// The guard pass does not scan the document again: while validating, the scanner records where
// each string outside the selected values starts and ends (up to 65536 of them; it finds any
// further ones by scanning), and the pass then only decodes strings that have escapes and calls
// the check. It allocates nothing either; its cost is mostly that of the check calls, one per
// string.
package jsonfield
