package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rkms/rkms/extproc"
	"github.com/rkms/rkms/extproc/policy"
	"github.com/rkms/rkms/internal/config"
)

// bulkIO is the open input and output of a run.
type bulkIO struct {
	in      io.Reader
	out     io.Writer
	inSize  int64 // the input file's size, for the ETA; 0 when unknown
	closers []func() error
}

// openBulkIO opens --in and --out (standard input and output by default). The output file is
// created with mode 0600: open writes plaintext.
func (b *bulkFlags) open(stdin io.Reader, stdout io.Writer) (*bulkIO, error) {
	bio := &bulkIO{in: stdin, out: stdout}
	if b.in != "" && b.in != "-" {
		f, err := os.Open(b.in)
		if err != nil {
			return nil, fmt.Errorf("--in: %w", err)
		}
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			bio.inSize = st.Size()
		}
		bio.in = f
		bio.closers = append(bio.closers, f.Close)
	}
	if b.out != "" && b.out != "-" {
		f, err := os.OpenFile(b.out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			bio.close()
			return nil, fmt.Errorf("--out: %w", err)
		}
		bio.out = f
		bio.closers = append(bio.closers, f.Close)
	}
	return bio, nil
}

// close closes the files; the first error is the output's (a full disk shows here).
func (bio *bulkIO) close() error {
	var errs []error
	for i := len(bio.closers) - 1; i >= 0; i-- {
		errs = append(errs, bio.closers[i]())
	}
	return errors.Join(errs...)
}

// docJob seals or opens documents (one JSON document or each NDJSON record) with one direction
// of a policy, through extproc.BodyTransform.
type docJob struct {
	op        sealOp
	f         *sealFlags
	pol       *policy.Policy
	keys      extproc.Keys
	response  bool
	maxFields int
	reqBody   []byte // --request-body, read once
}

func newDocJob(op sealOp, f *sealFlags, cfg *config.Config, pol *policy.Policy, keys extproc.Keys) (*docJob, error) {
	d := &docJob{op: op, f: f, pol: pol, keys: keys, maxFields: cfg.ExtProc.MaxFields,
		response: f.response || (op.op == policy.Decrypt && !f.request)}
	fs, side := pol.Request(), "request"
	if d.response {
		fs, side = pol.Response(), "response"
	}
	switch {
	case op.op == policy.Encrypt && !fs.Encrypts():
		return nil, fmt.Errorf("policy %s encrypts no field of %s bodies (--response selects the response side)", pol.Name(), side)
	case op.op == policy.Decrypt && !fs.Decrypts():
		return nil, fmt.Errorf("policy %s decrypts no field of %s bodies (--request selects the request side)", pol.Name(), side)
	}
	if f.reqBody != "" {
		b, err := os.ReadFile(f.reqBody)
		if err != nil {
			return nil, fmt.Errorf("request body: %w", err)
		}
		d.reqBody = b
	}
	return d, nil
}

// fields returns the direction's fields.
func (d *docJob) fields() *policy.Fields {
	if d.response {
		return d.pol.Response()
	}
	return d.pol.Request()
}

// side names the direction, for messages.
func (d *docJob) side() string {
	if d.response {
		return "response"
	}
	return "request"
}

// apply seals or opens doc and returns the result (doc itself when no field changed) and how
// many values changed.
func (d *docJob) apply(ctx context.Context, doc []byte) (out []byte, n int, keyID string, err error) {
	keyID, binding, err := d.f.evalIDs(d.pol, doc, d.response, d.reqBody)
	if err != nil {
		return nil, 0, "", &keyIDError{err}
	}
	bt := extproc.BodyTransform{Keys: d.keys, Policy: d.pol, Response: d.response, KeyID: keyID, Context: binding, MaxFields: d.maxFields}
	out, n, err = bt.Apply(ctx, doc)
	return out, n, keyID, err
}

// record is the NDJSON record function: it appends the sealed or opened record to dst. Its
// errors do not name the key id, which is computed from the record.
func (d *docJob) record(ctx context.Context, rec, dst []byte) ([]byte, int, error) {
	out, n, _, err := d.apply(ctx, rec)
	if err != nil {
		return dst, 0, err
	}
	dst = append(dst, out...)
	if n > 0 {
		clear(out) // a fresh buffer of the transform, which may hold plaintext (open)
	}
	return dst, n, nil
}

// runDocumentBulk seals or opens the input as the flags say: one JSON document, or NDJSON.
func (f *sealFlags) runDocumentBulk(ctx context.Context, op sealOp, cfg *config.Config, pol *policy.Policy, keys extproc.Keys, stdin io.Reader, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "rkms %s: %v\n", op.name, err)
		return 1
	}
	d, err := newDocJob(op, f, cfg, pol, keys)
	if err != nil {
		return fail(err)
	}
	verb := map[policy.Op]string{policy.Encrypt: "sealed", policy.Decrypt: "opened"}[op.op]
	sum := newBulkSummary(op.name, f.bulk.format, verb)
	if f.bulk.format == "json" {
		return runBulkJSON(ctx, op.name, &f.bulk, sum, stdin, stdout, stderr, func(ctx context.Context, doc []byte) ([]byte, int, error) {
			out, n, keyID, err := d.apply(ctx, doc)
			if err != nil {
				return nil, 0, fmt.Errorf("%s body, policy %s, key id %s: %w", d.side(), pol.Name(), keyID, err)
			}
			if n == 0 {
				fmt.Fprintf(stderr, "rkms %s: no field to %s in this %s body (policy %s): written unchanged\n", op.name, op.name, d.side(), pol.Name())
			}
			return out, n, nil
		})
	}
	return runBulkNDJSON(ctx, op.name, &f.bulk, sum, perRecord(d.record), stdin, stdout, stderr)
}

// runBulkJSON transforms one JSON document (at most maxSealInput bytes) with fn.
func runBulkJSON(ctx context.Context, name string, b *bulkFlags, sum *bulkSummary, stdin io.Reader, stdout, stderr io.Writer,
	fn func(context.Context, []byte) ([]byte, int, error)) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "rkms %s: %v\n", name, err)
		return 1
	}
	start := time.Now()
	bio, err := b.open(stdin, stdout)
	if err != nil {
		return fail(err)
	}
	in, err := io.ReadAll(io.LimitReader(bio.in, maxSealInput+1))
	if err != nil {
		bio.close()
		return fail(fmt.Errorf("read the input: %w", err))
	}
	if len(in) > maxSealInput {
		bio.close()
		return fail(fmt.Errorf("the input is larger than %d bytes (one JSON document; --format ndjson reads one record per line)", maxSealInput))
	}
	out, n, err := fn(ctx, in)
	sum.Records, sum.BytesIn = 1, int64(len(in))
	if err != nil {
		sum.fail(extproc.ErrorKind(err), 1)
		sum.Error = err.Error()
	} else {
		sum.Written, sum.Fields, sum.BytesOut = 1, int64(n), int64(len(out))
		if _, werr := bio.out.Write(out); werr != nil {
			err = fmt.Errorf("write the output: %w", werr)
		}
	}
	if cerr := bio.close(); err == nil && cerr != nil {
		err = fmt.Errorf("close: %w", cerr)
	}
	sum.Seconds = time.Since(start).Seconds()
	if b.summaryJSON != "" {
		if serr := sum.writeFile(b.summaryJSON); serr != nil && err == nil {
			err = serr
		}
	}
	if err != nil {
		return fail(err)
	}
	return 0
}

// runBulkNDJSON runs the NDJSON pipeline with process, then prints the summary. Exit status:
// 0 when every record was written, 1 when a record failed (rejected or stopping the run) or the
// run failed.
func runBulkNDJSON(ctx context.Context, name string, b *bulkFlags, sum *bulkSummary, process batchFunc, stdin io.Reader, stdout, stderr io.Writer) int {
	start := time.Now()
	bio, err := b.open(stdin, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "rkms %s: %v\n", name, err)
		return 1
	}
	run := &bulkRun{jobs: b.jobs, maxRecord: b.maxRecord, fromLine: b.fromLine, process: process, sum: sum}
	var rejectFile *os.File
	if b.reject != "" {
		if rejectFile, err = os.OpenFile(b.reject, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err != nil {
			bio.close()
			fmt.Fprintf(stderr, "rkms %s: --reject: %v\n", name, err)
			return 1
		}
		run.reject = rejectFile
	}
	stopProgress := startProgress(b, name, run, bio.inSize, stderr)
	err = run.run(ctx, bio.in, bio.out)
	stopProgress()
	if rejectFile != nil {
		if cerr := rejectFile.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("--reject: %w", cerr)
		}
	}
	if cerr := bio.close(); cerr != nil && err == nil {
		err = fmt.Errorf("close: %w", cerr)
	}
	sum.BytesIn = run.bytesRead.Load()
	sum.Seconds = time.Since(start).Seconds()
	code := 0
	if err != nil {
		code = 1
		sum.Error = err.Error()
		var stop *stopError
		if errors.As(err, &stop) {
			sum.Stopped, sum.ResumeFrom = stop.line, stop.line
		}
		fmt.Fprintf(stderr, "rkms %s: %v\n", name, err)
	} else if sum.Failed > 0 {
		code = 1
	}
	sum.print(stderr)
	if b.summaryJSON != "" {
		if err := sum.writeFile(b.summaryJSON); err != nil {
			fmt.Fprintf(stderr, "rkms %s: %v\n", name, err)
			code = 1
		}
	}
	return code
}
