package extproc

import (
	"context"
	"errors"

	"github.com/rkms/rkms/extproc/jsonfield"
	"github.com/rkms/rkms/extproc/policy"
)

// BodyTransform seals and opens the fields of one whole body outside an ext_proc stream, with
// the code the server runs on a stream: the same selectors, labels, mode, record binding,
// tripwires, key id check and envelope calls. It is what `rkms seal` and `rkms open` run, so a
// body sealed by one opens through the other. The caller computes the key id and the record
// binding (policy.KeyID.Eval and policy.Policy.Context, as the server does from the request).
type BodyTransform struct {
	Keys   Keys
	Policy *policy.Policy
	// Response selects the policy's response direction; false, its request direction.
	Response bool
	// KeyID is the key id the policy computes for the request.
	KeyID string
	// Context is the record binding the policy computes for the request ("" when it binds none).
	Context string
	// MaxFields is the most values one body may have selected; 0 means DefaultMaxFields.
	MaxFields int
}

// Apply returns body with the values its direction selects sealed or opened, and how many
// changed (0: out is body, unchanged). The tripwires run when the direction's bodies go to the
// application. Errors are the server's refusals: their text says what failed (the refusal the
// HTTP client would get, then the cause) and never holds a value of the body or key material.
func (bt *BodyTransform) Apply(ctx context.Context, body []byte) (out []byte, n int, err error) {
	if bt.Keys == nil || bt.Policy == nil {
		return nil, 0, errors.New("body transform: keys and policy are required")
	}
	ph, fs := phaseRequest, bt.Policy.Request()
	if bt.Response {
		ph, fs = phaseResponse, bt.Policy.Response()
	}
	var check func(*jsonfield.Outside) error
	if fs.Inbound() {
		g := bt.Policy.Guard(body)
		check = g.Check
	}
	if fs.Empty() {
		if check != nil {
			if _, err := fs.Plan().Inspect(body, check); err != nil {
				return nil, 0, classify(ph, err)
			}
		}
		return body, 0, nil
	}
	maxFields := bt.MaxFields
	if maxFields <= 0 {
		maxFields = DefaultMaxFields
	}
	t := newTransformer(bt.Keys, ph, bt.Policy, fs, bt.KeyID, bt.Context, nil)
	defer func() { clear(t.scratch[:cap(t.scratch)]) }() // it may hold a field's plaintext
	out, _, changed, err := t.rewrite(ctx, make([]byte, 0, len(body)+len(body)/2+256), body, check, maxFields)
	if err != nil {
		clear(out[:cap(out)])
		return nil, 0, classify(ph, err)
	}
	if changed == 0 {
		return body, 0, nil
	}
	return out, changed, nil
}

// ErrorKind names the class of an error that [BodyTransform.Apply] returned, for tools that
// count refusals by class (rkms seal over NDJSON): "not_json", "bad_input" (a tripwire, a
// field already encrypted, an invalid computed key id), "too_large", "auth" (a ciphertext
// that does not open here), "unavailable", "key_unknown", "key_limited", or "internal". It is
// the same classification as the server's statuses.
func ErrorKind(err error) string {
	if errors.Is(err, jsonfield.ErrInvalidJSON) && !errors.Is(err, jsonfield.ErrTooDeep) {
		return "not_json"
	}
	switch classify(phaseRequest, err).kind {
	case kindBadInput, kindPolicy, kindProtocol:
		return "bad_input"
	case kindMediaType:
		return "not_json"
	case kindTooLarge:
		return "too_large"
	case kindAuth:
		return "auth"
	case kindUnavailable, kindBusy, kindOverloaded:
		return "unavailable"
	case kindKeyUnknown:
		return "key_unknown"
	case kindKeyLimited:
		return "key_limited"
	}
	return "internal"
}
