package extproc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/extproc/blindindex"
	"github.com/rkms/rkms/extproc/jsonfield"
	"github.com/rkms/rkms/extproc/policy"
)

// transformer seals and opens the selected fields of one body. It lives for one body only: the
// key lookups it remembers are not a cache across requests (the keyring caches).
type transformer struct {
	keys     Keys
	phase    phase
	mode     envelope.Mode
	keyID    string
	binding  string // record binding context ("" for none), bound into every ciphertext
	fields   *policy.Fields
	legacy   bool                       // legacy plaintext passes at decrypt paths
	lookup   bool                       // never create the key (create: admin_only)
	passed   int                        // legacy plaintext values passed
	current  envelope.Key               // current.Secret is nil until the first seal looks it up
	counter  SealCounter                // keys, when they count seals; nil otherwise
	renewals int                        // times the current key was taken again after ErrKeySealLimit
	version  envelope.Key               // the last version opened (most bodies use one)
	versions map[uint32]envelope.Key    // the others
	scratch  []byte                     // one field's replacement; Rewrite copies it before the next
	indexes  map[string]*blindindex.Key // index keys derived for this body, by index name
	reveal   *revealState               // response.reveal of this caller; nil: reveal in full
	// tailStart is where a revealed value's output starts in the scratch (see tail).
	tailStart int

	// Counts of field: values selected, sealed and changed (sealed ones included), and the most
	// values that may be selected.
	selected, sealed, changed, maxFields int
}

// transform rewrites body, in direction fs of the stream's policy, with jsonfield's
// RewriteChecked, running the tripwire check first when check is not nil. The key id, record
// binding and request id are the stream's. It returns the new body, the pooled buffer that
// backs it (to be given back with bodies.put once the body has been sent) and how many values were
// sealed or opened. When that is 0 the body is unchanged, and out and buf are nil. Key lookups are
// bounded by KeyTimeout.
//
// p.scratch holds one field's replacement, grown as needed; it may hold a field's plaintext, and
// is cleared before transform returns.
func (p *processor) transform(ctx context.Context, ph phase, fs *policy.Fields, check func(*jsonfield.Outside) error, body []byte) (out []byte, buf *[]byte, n int, err error) {
	s, pol := p.s, p.pol
	kctx := withKeyTimeout(ctx, s.opts.KeyTimeout)
	defer kctx.stop()
	kctx.reqID = p.requestID()
	ctx = kctx
	t := newTransformer(s.keys, ph, pol, fs, p.keyID, p.context, p.scratch[:0])
	if ph == phaseResponse {
		p.revealFor(t)
	}
	defer func() {
		clear(t.scratch[:cap(t.scratch)]) // it may hold a field's plaintext
		p.scratch = t.scratch[:0]
	}()
	buf = s.bodies.get(len(body) + len(body)/2 + 256)
	orig := *buf
	out, sealed, changed, err := t.rewrite(ctx, orig, body, check, s.opts.MaxFields)
	clearIfLeft(orig, out) // the body outgrew the pooled buffer (sealing many short values)
	*buf = out
	if err == nil {
		s.observeFields(pol, sealed, changed-sealed, t.passed)
		s.observeReveal(ctx, pol, p.keyID, t.reveal)
	}
	if err != nil || changed == 0 {
		s.bodies.put(buf)
		if err != nil {
			pe := classify(ph, err)
			pe.at(body, err) // the field's path and record, for the log
			return nil, nil, 0, pe
		}
		return nil, nil, 0, nil
	}
	return out, buf, changed, nil
}

// newTransformer returns the transformer of one body of pol in direction fs, under key id keyID
// and record binding binding ("" for none); scratch is its initial scratch buffer (length 0).
func newTransformer(keys Keys, ph phase, pol *policy.Policy, fs *policy.Fields, keyID, binding string, scratch []byte) *transformer {
	counter, _ := keys.(SealCounter)
	return &transformer{keys: keys, counter: counter, phase: ph, mode: pol.Mode(), keyID: keyID, binding: binding, fields: fs,
		legacy: pol.LegacyPlaintextPasses(), lookup: pol.Create() == policy.CreateAdminOnly, scratch: scratch}
}

// rewrite writes body to dst with the selected values of t's direction sealed or opened, after
// the tripwire check when check is not nil (jsonfield's RewriteChecked). It refuses a body with
// more than maxFields selected values. It returns the new body and how many values were sealed
// and how many changed (sealed ones included). It is the one transform of a body: the stream's
// and [BodyTransform]'s.
func (t *transformer) rewrite(ctx context.Context, dst, body []byte, check func(*jsonfield.Outside) error, maxFields int) (out []byte, sealed, changed int, err error) {
	if envelope.IsReservedKeyID(t.keyID) {
		// Policies refuse such ids (policy.KeyID.Eval); this also covers BodyTransform's caller.
		return dst, 0, 0, newError(kindBadInput, t.phase, "key id is invalid", fmt.Errorf("%w: reserved for rkms's own keys", ErrInvalidKeyID))
	}
	t.maxFields = maxFields
	var n int
	out, n, err = t.fields.Plan().RewriteChecked(dst, body, check,
		func(f *jsonfield.Field, raw []byte) ([]byte, error) { return t.field(ctx, f, raw) })
	if err == nil {
		t.changed += n - t.selected // members removed (client-sent or application-sent blind indexes)
	}
	return out, t.sealed, t.changed, err
}

// field seals or opens one selected value, raw its JSON text, as the policy's operation for its
// selector says, and counts it. It is jsonfield's callback for the buffered body (rewrite) and
// the streamed one (see duplex.go) alike. It refuses the value past maxFields selected values.
func (t *transformer) field(ctx context.Context, f *jsonfield.Field, raw []byte) ([]byte, error) {
	if t.selected++; t.selected > t.maxFields {
		// Each value costs a seal or an open: bound the work one body can ask for.
		return nil, newError(kindTooLarge, t.phase, fmt.Sprintf("%s body has more than %d selected fields", t.phase, t.maxFields), nil)
	}
	var repl []byte
	var err error
	o := t.fields.Op(f)
	switch o {
	case policy.Encrypt:
		repl, err = t.seal(ctx, f, raw)
	case policy.Decrypt:
		repl, err = t.open(ctx, f, raw)
	default:
		err = fmt.Errorf("selector %s has no operation", f.Selector)
	}
	if err == nil && !bytes.Equal(repl, raw) {
		t.changed++
		if o == policy.Encrypt {
			t.sealed++
		}
	}
	return repl, err
}

// seal replaces raw (the JSON text of a value) by the JSON string of its ciphertext.
func (t *transformer) seal(ctx context.Context, f *jsonfield.Field, raw []byte) ([]byte, error) {
	if s, ok := jsonString(raw); ok && envelope.IsCiphertext(s) {
		return nil, newError(kindBadInput, t.phase, "field "+f.Selector.String()+" is already encrypted", nil)
	}
	if t.current.Secret == nil {
		if err := t.currentKey(ctx); err != nil {
			return nil, err
		}
	}
	if err := t.reserve(ctx); err != nil {
		return nil, err
	}
	out := append(t.scratch[:0], '"')
	out, err := envelope.Seal(out, t.current, t.mode, f.Label, t.context(), raw)
	if err != nil {
		return nil, fmt.Errorf("seal field %s: %w", f.Selector, err)
	}
	out = append(out, '"')
	if spec := t.fields.Index(f); spec != nil {
		if out, err = t.appendIndex(ctx, out, f, spec, raw); err != nil {
			t.keep(out)
			return nil, err
		}
	}
	t.keep(out)
	return out, nil
}

// appendIndex appends to out, the ciphertext just written for raw, the blind index member
// `,"NAME":"<index>"` (null for null).
func (t *transformer) appendIndex(ctx context.Context, out []byte, f *jsonfield.Field, spec *blindindex.Spec, raw []byte) ([]byte, error) {
	if string(raw) == "null" {
		return jsonfield.AppendMember(out, spec.Name, []byte("null")), nil
	}
	k, err := t.indexKey(ctx, spec.Name)
	if err != nil {
		return out, err
	}
	out = append(out, ',', '"')
	out = append(out, spec.Name...) // the name rule needs no escape
	out = append(out, '"', ':')
	out, err = k.AppendJSON(out, spec, raw)
	if err != nil {
		return out, newError(kindBadInput, t.phase, "field "+f.Selector.String()+" has a blind index: its value must be a string, a number or null", err)
	}
	return out, nil
}

// indexKey returns the index key of index name under the body's key id, derived once per body
// from the index root (indexRoot).
func (t *transformer) indexKey(ctx context.Context, name string) (*blindindex.Key, error) {
	if k, ok := t.indexes[name]; ok {
		return k, nil
	}
	root, err := indexRoot(ctx, t.keys)
	if err != nil {
		return nil, err
	}
	var k *blindindex.Key
	err = root.Secret.Use(func(b []byte) error {
		var err error
		k, err = blindindex.DeriveKey(b, t.keyID, name)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("blind index key: %w", err)
	}
	if t.indexes == nil {
		t.indexes = map[string]*blindindex.Key{}
	}
	t.indexes[name] = k
	return k, nil
}

// indexRoot returns the blind index root: version blindindex.RootVersion of
// blindindex.RootKeyID, created (as version 1) on first use. Later versions, should an operator
// rotate the id, are never used: they would change every index.
func indexRoot(ctx context.Context, keys Keys) (envelope.Key, error) {
	k, err := keys.Version(ctx, blindindex.RootKeyID, blindindex.RootVersion)
	if errors.Is(err, ErrKeyNotFound) {
		if k, err = keys.Current(ctx, blindindex.RootKeyID); err == nil && k.Version != blindindex.RootVersion {
			k, err = keys.Version(ctx, blindindex.RootKeyID, blindindex.RootVersion)
		}
	}
	if err != nil {
		return envelope.Key{}, fmt.Errorf("get blind index root: %w", err)
	}
	if k.ID != blindindex.RootKeyID || k.Version != blindindex.RootVersion || k.Secret == nil {
		return envelope.Key{}, fmt.Errorf("get blind index root: keys returned key %q version %d", k.ID, k.Version)
	}
	return k, nil
}

// currentKey looks up the current key of the body's key id.
func (t *transformer) currentKey(ctx context.Context) error {
	get := t.keys.Current
	if t.lookup {
		get = t.keys.Lookup
	}
	k, err := get(ctx, t.keyID)
	if err != nil {
		return fmt.Errorf("get current key: %w", err)
	}
	if k.ID != t.keyID || k.Secret == nil {
		return fmt.Errorf("get current key: keys returned key %q for %q, or no key", k.ID, t.keyID)
	}
	t.current = k
	return nil
}

// maxSealRenewals bounds how often one body takes the current key again after
// ErrKeySealLimit: more than once, because under parallel sealers with a small
// keyring.rotation.max_seals the version a renewal returns can be used up before this body
// seals with it (TestSealCountsSeals found it), but bounded, so that a key service that keeps
// answering with used-up versions fails the body instead of looping.
const maxSealRenewals = 3

// reserve counts one seal under the current key when the keys count seals. A version that may
// seal no more is replaced by the current key (it was just rotated), at most maxSealRenewals
// times per body.
func (t *transformer) reserve(ctx context.Context) error {
	if t.counter == nil {
		return nil
	}
	err := t.counter.ReserveSeals(ctx, t.current.ID, t.current.Version, 1)
	for errors.Is(err, ErrKeySealLimit) && t.renewals < maxSealRenewals {
		t.renewals++
		if err := t.currentKey(ctx); err != nil {
			return err
		}
		err = t.counter.ReserveSeals(ctx, t.current.ID, t.current.Version, 1)
	}
	if err != nil {
		return fmt.Errorf("reserve a seal: %w", err)
	}
	return nil
}

// open replaces the JSON string of a ciphertext by the JSON text it protects. A value that is
// not an rkms ciphertext is refused, unless it is null or the policy lets legacy plaintext
// pass. A ciphertext sealed under another key id than the one the policy computes for this
// request is refused: no cross-tenant decryption.
func (t *transformer) open(ctx context.Context, f *jsonfield.Field, raw []byte) ([]byte, error) {
	if t.reveal != nil {
		if fi, ok := t.reveal.rs.Field(f); ok {
			return t.revealOpen(ctx, f, fi, raw)
		}
	}
	text, ok := jsonString(raw)
	if !ok || !envelope.IsCiphertext(text) {
		switch {
		case string(raw) == "null":
			return raw, nil
		case t.legacy:
			t.passed++
			return raw, nil
		}
		return nil, newError(kindBadInput, t.phase, "field "+f.Selector.String()+" holds plaintext where a ciphertext is expected", nil)
	}
	return t.decrypt(ctx, f, text, true)
}

// checkKeyID refuses text, a ciphertext, when it was sealed under another key id than the one
// the policy computes for this request (no cross-tenant decryption), and returns its version.
func (t *transformer) checkKeyID(f *jsonfield.Field, text []byte) error {
	_, err := t.keyVersion(f, text)
	return err
}

func (t *transformer) keyVersion(f *jsonfield.Field, text []byte) (uint32, error) {
	version, err := envelope.KeyVersionFor(text, t.keyID)
	if errors.Is(err, envelope.ErrKeyMismatch) {
		return 0, newError(kindAuth, t.phase, authFailed,
			fmt.Errorf("field %s: ciphertext key id differs from the key id of this request", f.Selector))
	}
	if err != nil {
		return 0, fmt.Errorf("parse ciphertext of %s: %w", f.Selector, err)
	}
	return version, nil
}

// decrypt opens text, the ciphertext of field f, into t.scratch and returns the JSON text it
// protects. With validate, a plaintext that is not JSON fails; without, the caller must check
// it (revealValue: a mask or token validates the string it reads).
func (t *transformer) decrypt(ctx context.Context, f *jsonfield.Field, text []byte, validate bool) ([]byte, error) {
	version, err := t.keyVersion(f, text)
	if err != nil {
		return nil, err
	}
	k, err := t.key(ctx, version)
	if err != nil {
		return nil, err
	}
	pt, err := envelope.Open(t.scratch[:0], k, f.Label, t.context(), text)
	if err != nil {
		return nil, fmt.Errorf("open field %s: %w", f.Selector, err)
	}
	t.keep(pt)
	if validate && !json.Valid(pt) {
		return nil, t.notJSON(f)
	}
	return pt, nil
}

// notJSON is the error of a plaintext that is not JSON: it authenticated, so it was sealed so
// (rkms never seals anything else); the response fails like a forgery.
func (t *transformer) notJSON(f *jsonfield.Field) error {
	return newError(kindAuth, t.phase, authFailed, fmt.Errorf("field %s: plaintext is not JSON", f.Selector))
}

// context returns the record binding as the envelope's associated context (nil for none).
func (t *transformer) context() []byte {
	if t.binding == "" {
		return nil
	}
	return []byte(t.binding)
}

// keep makes out, which was appended to t.scratch[:0], the new scratch. When the append had to
// grow, the old array is cleared before it is dropped: it may hold an earlier field's plaintext.
func (t *transformer) keep(out []byte) {
	clearIfLeft(t.scratch, out)
	t.scratch = out
}

// clearIfLeft clears the whole array of old when next does not share it: old is being dropped,
// and may hold plaintext.
func clearIfLeft(old, next []byte) {
	if cap(old) > 0 && (cap(next) == 0 || &old[:1][0] != &next[:1][0]) {
		clear(old[:cap(old)])
	}
}

// key returns version v of the body's key id, looking each version up once per body.
func (t *transformer) key(ctx context.Context, v uint32) (envelope.Key, error) {
	if t.version.Secret != nil && t.version.Version == v {
		return t.version, nil
	}
	if k, ok := t.versions[v]; ok {
		return k, nil
	}
	k, err := t.keys.Version(ctx, t.keyID, v)
	if err != nil {
		return envelope.Key{}, fmt.Errorf("get key version %d: %w", v, err)
	}
	if t.version.Secret != nil {
		if t.versions == nil {
			t.versions = map[uint32]envelope.Key{}
		}
		t.versions[t.version.Version] = t.version
	}
	t.version = k
	return k, nil
}

// bodyPool recycles the buffers of rewritten bodies, which are as large as the bodies. A buffer
// is cleared when it comes back: it may hold plaintext of opened fields.
type bodyPool struct{ p sync.Pool }

// maxPooledBody bounds the buffers kept for reuse.
const maxPooledBody = 4 << 20

// get returns an empty buffer of capacity at least n.
func (bp *bodyPool) get(n int) *[]byte {
	if b, ok := bp.p.Get().(*[]byte); ok {
		*b = slices.Grow((*b)[:0], n)
		return b
	}
	b := make([]byte, 0, n)
	return &b
}

// put clears the whole buffer (a failed Rewrite may have written past len) and keeps it for reuse.
func (bp *bodyPool) put(b *[]byte) {
	clear((*b)[:cap(*b)])
	if cap(*b) > maxPooledBody {
		return
	}
	*b = (*b)[:0]
	bp.p.Put(b)
}

// jsonString returns the content of raw when raw is a JSON string. Ciphertexts never need
// escapes, so the common case is a slice of raw; escaped strings are decoded.
func jsonString(raw []byte) ([]byte, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return nil, false
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return inner, true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, false
	}
	return []byte(s), true
}
