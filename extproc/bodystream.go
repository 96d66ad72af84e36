package extproc

import "github.com/rkms/rkms/extproc/jsonfield"

// bodyStream is the push transform of one streamed body: what the server needs of
// jsonfield's [jsonfield.Stream]. Write appends to dst the output that may be forwarded now;
// Close appends the rest at the end of the input, or fails if the input is incomplete; Held is
// the bytes held between calls (for the memory budget); Line is the 1-based line being read
// (NDJSON). A selected value's input bytes are never in the output, only fn's replacement;
// after an error there is no more output.
type bodyStream interface {
	Write(dst, chunk []byte) ([]byte, error)
	Close(dst []byte) ([]byte, error)
	Held() int
	Line() int
}

var _ bodyStream = (*jsonfield.Stream)(nil)

// newBodyStream returns the streamed rewrite of plan, with check and fn as for the buffered
// rewrite (RewriteChecked): one document, or one per line when ndjson. It holds at most one
// selected value (jsonfield.DefaultMaxValue, 1 MiB) and a pending token
// (jsonfield.DefaultMaxPending, 64 KiB).
func newBodyStream(plan *jsonfield.Plan, ndjson bool, check func(*jsonfield.Outside) error, fn func(f *jsonfield.Field, raw []byte) ([]byte, error)) bodyStream {
	return plan.NewStream(jsonfield.StreamOptions{NDJSON: ndjson}, check, fn)
}
