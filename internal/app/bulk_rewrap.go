package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/extproc/jsonfield"
	"github.com/rkms/rkms/extproc/policy"
	"github.com/rkms/rkms/internal/config"
	"github.com/rkms/rkms/internal/keyservice"
	"github.com/rkms/rkms/internal/metrics"
)

const rewrapUsage = `usage: rkms rewrap --config FILE --policy NAME [--request] [KEY ID] [--server URL] [--in FILE] [--out FILE] [-j N] ...

rewrap moves every ciphertext of the fields that one direction of a policy decrypts (the
response side, as rkms open; --request: the request side of a policy whose requests decrypt) to
the current version of its key, through the key service's Rewrap: the ciphertexts are opened
and sealed again inside rkms, with the same mode, label and record binding, and no plaintext or
key reaches this command. A ciphertext already under the current version is left as it is.
Run it after rotating a key (POST /key/rotate), before retiring the old version.

Input and output, KEY ID and the NDJSON flags are those of rkms seal (rkms seal --help): one
JSON document, or NDJSON (--format ndjson, or an .ndjson/.jsonl --in) with -j, --from-line,
--reject, --max-record, --summary-json and the progress line. The key id of each ciphertext:
--key-id (a ciphertext under another key id fails), else the policy's key_id template computed
from the record ({json:...}) and the request inputs given, else, when the template needs an
input an export does not carry ({jwt:...}, {header:...}), the key id in the ciphertext's own
header: a rewrap never moves a ciphertext to another key id. The record binding (context) must
be computable as for open.

KEYS: --server URL sends the ciphertexts in batches of up to 1,000 to POST /v1/rewrap of a
running rkms (token from $RKMS_ADMIN_TOKEN or --token-file; the credential needs the rewrap
right). Without it, the configured keyring is opened (as rkms seal does) and the rewrap runs in
this process, audited like the API's.

Exit status: 0 every record written, 1 a record failed (see --reject) or the run failed, 2 usage.
`

// rewrapper is the rewrap core as this command uses it: keyservice.Session.Rewrap in
// process, or POST /v1/rewrap of a running rkms (rewrapClient). Per-item errors come back in
// the results; the error is for the whole call.
type rewrapper interface {
	Rewrap(ctx context.Context, items []keyservice.RewrapItem) ([]keyservice.RewrapResult, error)
}

var _ rewrapper = (*keyservice.Session)(nil)

// maxRewrapCallBytes bounds the ciphertexts, labels, key ids and contexts of one Rewrap call, so
// that the request stays under keyservice.MaxRewrapRequestBytes with its JSON framing.
const maxRewrapCallBytes = keyservice.MaxRewrapRequestBytes * 3 / 4

func rewrapCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	op := sealOp{"rewrap", policy.Decrypt}
	if len(args) == 1 && isHelp(args[0]) {
		fmt.Fprint(stdout, rewrapUsage)
		return 0
	}
	f, ok := parseSealFlags(op, args, stderr)
	if !ok {
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "rkms rewrap: %v\n", err)
		return 1
	}
	cfg, err := loadSealConfig(f.cfgPath)
	if err != nil {
		return fail(err)
	}
	pol, err := findPolicy(cfg, f.cfgPath, f.policy)
	if err != nil {
		return fail(err)
	}
	if f.bulk.format != "ndjson" {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.timeout)
		defer cancel()
	}
	rw, closeRW, err := f.rewrapper(ctx, cfg, stderr)
	if err != nil {
		return fail(err)
	}
	defer closeRW()
	d, err := newDocJob(op, f, cfg, pol, nil)
	if err != nil {
		return fail(err)
	}
	j := &rewrapJob{d: d, rw: rw}
	sum := newBulkSummary("rewrap", f.bulk.format, "rewrapped")
	if f.bulk.format == "json" {
		return runBulkJSON(ctx, "rewrap", &f.bulk, sum, stdin, stdout, stderr, func(ctx context.Context, doc []byte) ([]byte, int, error) {
			b := &bulkBatch{in: doc, recs: []bulkRec{{line: 1, end: len(doc)}}}
			j.process(ctx, b)
			if e := b.recs[0].err; e != nil {
				return nil, 0, fmt.Errorf("%s: %s", e.Kind, e.Message)
			}
			return b.out[:len(b.out)-1], b.recs[0].fields, nil // without the NDJSON newline
		})
	}
	return runBulkNDJSON(ctx, "rewrap", &f.bulk, sum, j.process, stdin, stdout, stderr)
}

// rewrapper returns the rewrap core: the admin API of --server, or a key service over the
// configured keyring with a credential of this process only.
func (f *sealFlags) rewrapper(ctx context.Context, cfg *config.Config, stderr io.Writer) (rewrapper, func(), error) {
	if f.keys.server != "" {
		sk, err := f.keys.serverKeys(cfg)
		if err != nil {
			return nil, nil, err
		}
		return &rewrapClient{s: sk}, func() {}, nil
	}
	if cfg.Store.Type == "memory" {
		return nil, nil, errors.New("the configured store is memory: its keys live in the running rkms only; use --server URL")
	}
	ks, err := openKeys(ctx, cfg, cliLogger(stderr), metrics.New())
	if err != nil {
		return nil, nil, fmt.Errorf("open the keyring: %w (a running rkms holding it: use --server)", err)
	}
	var tok [32]byte
	_, _ = rand.Read(tok[:])
	token := hex.EncodeToString(tok[:])
	svc, err := keyservice.New(ks.kr, keyservice.Options{Token: token, Audit: ks.audit, Timeout: f.timeout})
	if err != nil {
		ks.close()
		return nil, nil, err
	}
	ss, err := svc.Authenticate(ctx, keyservice.Caller{API: apiCLI, Authorization: "Bearer " + token}, "", "")
	if err != nil {
		ks.close()
		return nil, nil, err
	}
	return ss, ks.close, nil
}

// apiCLI is the api attribute of the audit records of a rewrap run in this process.
const apiCLI = "cli"

// rewrapJob rewraps the tagged fields of records.
type rewrapJob struct {
	d  *docJob
	rw rewrapper
}

// rewrapRef is one ciphertext of a record: where its result lands.
type rewrapRef struct {
	rec  int // index in the batch
	item int // index in the batch's items
}

// process rewraps the records of b: it collects the ciphertexts of every record, sends them in
// calls of at most keyservice.MaxRewrapItems items and maxRewrapCallBytes, and writes each
// record with its new ciphertexts. A record with a field that fails is the record's failure.
func (j *rewrapJob) process(ctx context.Context, b *bulkBatch) {
	var items []keyservice.RewrapItem
	first := make([]int, len(b.recs)+1) // record i's items are items[first[i]:first[i+1]]
	for i := range b.recs {
		first[i] = len(items)
		r := &b.recs[i]
		if r.err != nil {
			continue
		}
		var err error
		if items, err = j.collect(b.in[r.start:r.end], items); err != nil {
			r.err = classifyBulk(err)
			items = items[:first[i]]
		}
	}
	first[len(b.recs)] = len(items)
	results := make([]keyservice.RewrapResult, len(items))
	for lo := 0; lo < len(items); {
		hi, size := lo, 0
		for hi < len(items) && hi-lo < keyservice.MaxRewrapItems {
			it := &items[hi]
			size += len(it.Ciphertext) + len(it.Label) + len(it.KeyID) + len(it.Context)*4/3 + 64
			if size > maxRewrapCallBytes && hi > lo {
				break
			}
			hi++
		}
		res, err := j.rw.Rewrap(ctx, items[lo:hi])
		if err == nil && len(res) != hi-lo {
			err = fmt.Errorf("rewrap answered %d results for %d items", len(res), hi-lo)
		}
		for k := lo; k < hi; k++ {
			if err != nil {
				results[k].Err = keyservice.Classify(err)
			} else {
				results[k] = res[k-lo]
			}
		}
		lo = hi
	}
	for i := range b.recs {
		r := &b.recs[i]
		if r.err != nil {
			continue
		}
		out, n, err := j.apply(b.in[r.start:r.end], items[first[i]:first[i+1]], results[first[i]:first[i+1]], b.out)
		if err != nil {
			r.err = err
			continue
		}
		b.out = append(out, '\n')
		r.outEnd, r.fields = len(b.out), n
	}
}

// collect appends the rewrap items of one record: each ciphertext its direction decrypts, with
// the record's key id and binding and the field's label. null passes, and plaintext where the
// policy lets legacy plaintext pass; other plaintext is refused as open refuses it.
func (j *rewrapJob) collect(rec []byte, items []keyservice.RewrapItem) ([]keyservice.RewrapItem, error) {
	d := j.d
	src := d.f.source(rec, d.response, d.reqBody)
	keyID, err := d.f.keyIDOf(d.pol, src)
	if err != nil && (!errors.Is(err, errKeyIDTemplate) || errors.Is(err, jsonfield.ErrInvalidJSON)) {
		return items, &keyIDError{err}
	}
	// keyID "" (a template that needs request inputs not given, such as {jwt:...}): each
	// ciphertext keeps the key id its header names. A rewrap never changes a ciphertext's key
	// id, so the template's check (no ciphertext of another tenant in this record) is what
	// ext_proc does when the record is read, not something the rewrap needs.
	binding, err := d.f.bindingOf(d.pol, src)
	if err != nil {
		return items, &keyIDError{err}
	}
	var bind []byte
	if binding != "" {
		bind = []byte(binding)
	}
	fs := d.fields()
	n := 0
	_, err = fs.Plan().Visit(rec, func(f *jsonfield.Field, raw []byte) error {
		if fs.Op(f) != policy.Decrypt {
			return nil
		}
		if n++; n > d.maxFields {
			return fmt.Errorf("%w: more than %d selected fields", errTooManyFields, d.maxFields)
		}
		text, ok := jsonStringOf(raw)
		switch {
		case ok && envelope.IsCiphertext(text):
			id := keyID
			if id == "" {
				h, err := envelope.Parse(text)
				if err != nil {
					return fmt.Errorf("%w: field %s: %w", errRecordInput, f.Selector, err)
				}
				id = h.KeyID
			}
			items = append(items, keyservice.RewrapItem{KeyID: id, Label: f.Label, Context: bind, Ciphertext: string(text)})
		case string(raw) == "null", d.pol.LegacyPlaintextPasses():
		default:
			return fmt.Errorf("%w: field %s holds plaintext where a ciphertext is expected", errRecordInput, f.Selector)
		}
		return nil
	})
	return items, err
}

// apply writes rec to dst with each ciphertext replaced by its result, in the order collect
// found them. It returns how many were rewrapped, or the first field's error.
func (j *rewrapJob) apply(rec []byte, items []keyservice.RewrapItem, results []keyservice.RewrapResult, dst []byte) ([]byte, int, *recordError) {
	keys := make([]string, len(items))
	for i, res := range results {
		if res.Err != nil {
			return dst, 0, &recordError{Kind: res.Err.Class.String(), Message: res.Err.Msg}
		}
		keys[i] = items[i].KeyID
	}
	fs := j.d.fields()
	k, n := 0, 0
	out, _, err := fs.Plan().Rewrite(dst, rec, func(f *jsonfield.Field, raw []byte) ([]byte, error) {
		if fs.Op(f) != policy.Decrypt {
			return raw, nil
		}
		if text, ok := jsonStringOf(raw); !ok || !envelope.IsCiphertext(text) {
			return raw, nil // null or legacy plaintext, as collect let it pass
		}
		if k >= len(results) {
			return nil, errors.New("more ciphertexts than when they were collected")
		}
		res := results[k]
		k++
		// The answer goes into the record as a JSON string: it must be a well-formed ciphertext
		// (base64url after the prefix, nothing to escape) of the record's key id.
		if h, err := envelope.Parse([]byte(res.Ciphertext)); err != nil || h.KeyID != keys[k-1] {
			return nil, fmt.Errorf("%w: the rewrap answer for field %s is not a ciphertext of the record's key id", errRewrapAnswer, f.Selector)
		}
		if res.Rewrapped {
			n++
		}
		return []byte(`"` + res.Ciphertext + `"`), nil
	})
	if err == nil && k != len(results) {
		err = errors.New("fewer ciphertexts than when they were collected")
	}
	if err != nil {
		return dst, 0, classifyBulk(err)
	}
	return out, n, nil
}

// Errors of a record's fields that rewrap finds itself.
var (
	errRecordInput   = errors.New("bad input")
	errTooManyFields = errors.New("too many fields")
	errRewrapAnswer  = errors.New("invalid rewrap answer")
)
