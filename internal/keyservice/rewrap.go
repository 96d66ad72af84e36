package keyservice

import (
	"context"
	"errors"
	"fmt"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/internal/access"
	"github.com/rkms/rkms/internal/audit"
	"github.com/rkms/rkms/keyring"
)

// Rewrap limits. The transports hold a request to MaxRewrapRequestBytes before it reaches
// [Session.Rewrap], which refuses more than MaxRewrapItems items and any ciphertext longer than
// MaxRewrapCiphertextLen.
const (
	// MaxRewrapItems bounds the items of one call: more is an InvalidArgument refusal of the
	// whole call.
	MaxRewrapItems = 1000
	// MaxRewrapRequestBytes bounds one rewrap request as it travels: the admin API's body
	// (413 above it) and the key API's message (RESOURCE_EXHAUSTED above it).
	MaxRewrapRequestBytes = 1 << 20
	// MaxRewrapCiphertextLen bounds one item's ciphertext: the longest text form the format has
	// (envelope.MaxTextLen); a longer one is a per-item InvalidArgument, refused before it is
	// decoded.
	MaxRewrapCiphertextLen = envelope.MaxTextLen
)

// Per-item messages of [Session.Rewrap], fixed so that they never carry a ciphertext or a value.
const (
	msgLabel          = "invalid label: 1 to 256 bytes"
	msgContext        = "invalid context: at most 4096 bytes"
	msgMalformed      = "malformed ciphertext"
	msgUnsupported    = "unsupported ciphertext format"
	msgOtherKey       = "the ciphertext names another key id"
	msgAuthentication = "authentication failed"
	msgVersion        = "key version not found"
)

// RewrapItem is one ciphertext to move to the current version of its key id, with the label
// and context it was sealed with (they stay bound to it).
type RewrapItem struct {
	KeyID, Label string
	Context      []byte
	Ciphertext   string
}

// RewrapResult is what became of one [RewrapItem]: the ciphertext under the current version and
// that version (Rewrapped false when it was current already and comes back unchanged), or Err.
type RewrapResult struct {
	Ciphertext string
	Version    uint32
	Rewrapped  bool
	Err        *Error
}

// Rewrap opens each item's ciphertext under the version its header names and seals the value
// again under the current version of its key id, with the same mode, label and context; the
// plaintext never leaves this function (it is wiped after each item) and the key never leaves
// rkms. A ciphertext whose version is current, or newer than the current version this replica
// knows (its cache has not seen a rotation yet), comes back unchanged, unopened and unchecked,
// with Rewrapped false: a rewrap never moves a ciphertext to an older version.
//
// Items are independent: an item that fails gets its own Err and the others go on, so a bulk
// run keeps going past a bad record. Per-item errors: InvalidArgument (key id, label, context,
// malformed or unsupported ciphertext, a header naming another key id), Forbidden (the
// credential may not rewrap that id: audited once per refused id), NotFound (no key, or no such
// version), Deleted, AuthenticationFailed (wrong label, context or a modified ciphertext),
// Unavailable, Canceled, Internal. The returned error is for the whole call: more than
// MaxRewrapItems items (InvalidArgument); authentication happens before, in
// [Service.Authenticate].
//
// Items are grouped by key id: one permission check and one current-version lookup per id, one
// key lookup per (id, version), each bounded by the service's timeout. The call writes one
// audit record ([audit.Logger.RecordBatch]), never with ciphertexts or values.
func (ss *Session) Rewrap(ctx context.Context, items []RewrapItem) ([]RewrapResult, error) {
	if err := ss.CheckRewrapCount(ctx, len(items)); err != nil {
		return nil, err
	}
	ctx = audit.WithWho(ctx, ss.who)
	rw := &rewrap{ss: ss, items: items, res: make([]RewrapResult, len(items))}
	groups, order := rw.group()
	for _, id := range order {
		rw.runGroup(ctx, id, groups[id])
	}
	clear(rw.pt)
	ss.s.audit.RecordBatch(ctx, audit.OpRewrap, rw.batch(), nil)
	rw.report()
	return rw.res, nil
}

// report tells the service's OnRewrap hook the items of each result.
func (rw *rewrap) report() {
	if rw.ss.s.onRewrap == nil {
		return
	}
	const numClasses = len(classNames)
	var counts [numClasses + 2]int // the error classes, then rewrapped and unchanged
	for _, r := range rw.res {
		switch {
		case r.Err != nil:
			counts[r.Err.Class]++
		case r.Rewrapped:
			counts[numClasses]++
		default:
			counts[numClasses+1]++
		}
	}
	for i, n := range counts {
		if n == 0 {
			continue
		}
		switch i {
		case numClasses:
			rw.ss.s.onRewrap("rewrapped", n)
		case numClasses + 1:
			rw.ss.s.onRewrap("unchanged", n)
		default:
			rw.ss.s.onRewrap(Class(i).String(), n)
		}
	}
}

// CheckRewrapCount refuses a rewrap call of n items when n is over MaxRewrapItems: the refusal
// of the whole call is audited (a batch record with result invalid) and returned as
// InvalidArgument. [Session.Rewrap] calls it; a transport calls it first to refuse a request
// before it converts the items.
func (ss *Session) CheckRewrapCount(ctx context.Context, n int) error {
	if n <= MaxRewrapItems {
		return nil
	}
	err := fmt.Errorf("rewrap of %d items, at most %d: %w", n, MaxRewrapItems, keyring.ErrInvalidID)
	ss.s.audit.RecordBatch(audit.WithWho(ctx, ss.who), audit.OpRewrap, audit.Batch{Items: n}, err)
	return &Error{Class: InvalidArgument, Msg: fmt.Sprintf("too many items: at most %d per call", MaxRewrapItems), Err: err}
}

// rewrap is one Rewrap call in progress.
type rewrap struct {
	ss    *Session
	items []RewrapItem
	res   []RewrapResult
	ids   audit.BatchIDs
	pt    []byte // plaintext scratch, wiped after each item and at the end
	out   []byte // sealed text scratch
}

// group validates every item's key id and returns the indexes of the valid ones by key id,
// with the ids in order of first appearance.
func (rw *rewrap) group() (map[string][]int, []string) {
	groups := map[string][]int{}
	var order []string
	for i, it := range rw.items {
		if err := keyring.ValidateID(it.KeyID); err != nil {
			rw.res[i].Err = &Error{Class: InvalidArgument, Msg: msgIDRule, Err: err}
			continue
		}
		rw.ids.Add(it.KeyID)
		if _, seen := groups[it.KeyID]; !seen {
			order = append(order, it.KeyID)
		}
		groups[it.KeyID] = append(groups[it.KeyID], i)
	}
	return groups, order
}

// parsed is an item that passed the checks that need no key.
type parsed struct {
	i int
	h envelope.Header
}

// runGroup rewraps the items idx of key id: the permission, then the checks that need no key,
// then the current version, then each older version once.
func (rw *rewrap) runGroup(ctx context.Context, id string, idx []int) {
	if err := rw.ss.permit(ctx, access.Rewrap, id); err != nil {
		rw.failAll(idx, Classify(err))
		return
	}
	var todo []parsed
	for _, i := range idx {
		h, e := checkItem(rw.items[i])
		if e != nil {
			rw.res[i].Err = e
			continue
		}
		todo = append(todo, parsed{i, h})
	}
	if len(todo) == 0 {
		return
	}
	if err := ctx.Err(); err != nil {
		rw.failParsed(todo, Classify(err))
		return
	}
	cur, err := rw.current(ctx, id)
	if err != nil {
		rw.failParsed(todo, rw.ss.fail(audit.OpRewrap, err).(*Error))
		return
	}
	keys := map[uint32]keyResult{cur.Version: {dk: cur}}
	for _, p := range todo {
		if p.h.KeyVersion >= cur.Version {
			rw.res[p.i] = RewrapResult{Ciphertext: rw.items[p.i].Ciphertext, Version: p.h.KeyVersion}
			continue
		}
		kr, ok := keys[p.h.KeyVersion]
		if !ok {
			dk, err := rw.version(ctx, id, p.h.KeyVersion)
			kr = keyResult{dk: dk}
			if err != nil {
				kr.err = rw.versionError(err)
			}
			keys[p.h.KeyVersion] = kr
		}
		if kr.err != nil {
			rw.res[p.i].Err = kr.err
			continue
		}
		rw.res[p.i] = rw.reseal(rw.items[p.i], p.h.Mode, kr.dk, cur)
	}
}

// keyResult is one (id, version) lookup, kept for the group's other items.
type keyResult struct {
	dk  keyring.DataKey
	err *Error
}

// current fetches the current version of id, bounded by the service's timeout.
func (rw *rewrap) current(ctx context.Context, id string) (keyring.DataKey, error) {
	ctx, cancel := context.WithTimeout(ctx, rw.ss.s.timeout)
	defer cancel()
	return rw.ss.s.keys.Lookup(ctx, id)
}

// version fetches version v of id, bounded by the service's timeout (a header's version 0 is
// no version: the keyring refuses it as not found).
func (rw *rewrap) version(ctx context.Context, id string, v uint32) (keyring.DataKey, error) {
	ctx, cancel := context.WithTimeout(ctx, rw.ss.s.timeout)
	defer cancel()
	return rw.ss.s.keys.GetVersion(ctx, id, v)
}

// versionError classifies the failed lookup of an older version: a missing version says so.
func (rw *rewrap) versionError(err error) *Error {
	e := rw.ss.fail(audit.OpRewrap, err).(*Error)
	if e.Class == NotFound {
		e = &Error{Class: NotFound, Msg: msgVersion, Err: err}
	}
	return e
}

// checkItem checks what needs no key: label, context, the ciphertext's length and header, and
// that the header names the item's key id.
func checkItem(it RewrapItem) (envelope.Header, *Error) {
	switch {
	case len(it.Label) == 0 || len(it.Label) > envelope.MaxLabelLen:
		return envelope.Header{}, &Error{Class: InvalidArgument, Msg: msgLabel}
	case len(it.Context) > envelope.MaxContextLen:
		return envelope.Header{}, &Error{Class: InvalidArgument, Msg: msgContext}
	case len(it.Ciphertext) > MaxRewrapCiphertextLen:
		return envelope.Header{}, &Error{Class: InvalidArgument, Msg: msgMalformed,
			Err: fmt.Errorf("ciphertext of %d bytes, at most %d: %w", len(it.Ciphertext), MaxRewrapCiphertextLen, envelope.ErrMalformed)}
	}
	h, err := envelope.Parse([]byte(it.Ciphertext))
	switch {
	case errors.Is(err, envelope.ErrUnsupportedVersion):
		return h, &Error{Class: InvalidArgument, Msg: msgUnsupported, Err: err}
	case err != nil:
		return h, &Error{Class: InvalidArgument, Msg: msgMalformed, Err: err}
	case h.KeyID != it.KeyID:
		return h, &Error{Class: InvalidArgument, Msg: msgOtherKey, Err: envelope.ErrKeyMismatch}
	}
	return h, nil
}

// reseal opens it under old and seals the value under cur with the same mode, label and
// context; the plaintext is wiped before it returns.
func (rw *rewrap) reseal(it RewrapItem, mode envelope.Mode, old, cur keyring.DataKey) RewrapResult {
	pt, err := envelope.Open(rw.pt[:0], envelope.Key(old), it.Label, it.Context, []byte(it.Ciphertext))
	rw.pt = pt[:0]
	defer clear(pt)
	switch {
	case errors.Is(err, envelope.ErrAuthentication):
		return RewrapResult{Err: &Error{Class: AuthenticationFailed, Msg: msgAuthentication, Err: err}}
	case err != nil:
		return RewrapResult{Err: rw.ss.fail(audit.OpRewrap, fmt.Errorf("rewrap: open %q version %d: %w", it.KeyID, old.Version, err)).(*Error)}
	}
	out, err := envelope.Seal(rw.out[:0], envelope.Key(cur), mode, it.Label, it.Context, pt)
	if err != nil {
		return RewrapResult{Err: rw.ss.fail(audit.OpRewrap, fmt.Errorf("rewrap: seal %q version %d: %w", it.KeyID, cur.Version, err)).(*Error)}
	}
	rw.out = out[:0]
	return RewrapResult{Ciphertext: string(out), Version: cur.Version, Rewrapped: true}
}

// failAll gives every item of idx the error e.
func (rw *rewrap) failAll(idx []int, e *Error) {
	for _, i := range idx {
		rw.res[i].Err = e
	}
}

func (rw *rewrap) failParsed(ps []parsed, e *Error) {
	for _, p := range ps {
		rw.res[p.i].Err = e
	}
}

// batch is the call's audit summary.
func (rw *rewrap) batch() audit.Batch {
	b := audit.Batch{Items: len(rw.items)}
	rw.ids.Fill(&b)
	for _, r := range rw.res {
		switch {
		case r.Err != nil:
			b.Failed++
		case r.Rewrapped:
			b.Rewrapped++
		default:
			b.Unchanged++
		}
	}
	return b
}
