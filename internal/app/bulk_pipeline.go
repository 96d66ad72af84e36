package app

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"golang.org/x/sync/errgroup"
)

// Batching: the reader hands records to the workers in batches of about batchBytes of input
// (or batchRecords records), and at most inflight(jobs) batches exist at once: one per worker,
// as many again (at most 8) queued for the ordered writer, and 2 more. Memory is therefore bounded
// by the number of workers and the record bound, never by the input's size: a batch holds about
// 256 KiB in and 450 KiB out with records of 300-500 bytes (-j 2: 8 batches, about 6 MB), and in
// the worst case (batchBytes + maxRecord) * 3 (input, output, growth).
const (
	batchBytes   = 256 << 10
	batchRecords = 1024
	// maxJobs bounds -j.
	maxJobs = 256
	// maxRecordBound bounds --max-record.
	maxRecordBound = maxSealInput
)

// bulkRec is one record of a batch.
type bulkRec struct {
	line       int64
	start, end int // the record's text in batch.in
	outEnd     int // its output ends at batch.out[outEnd] (when err is nil)
	fields     int // values sealed, opened or rewrapped
	err        *recordError
}

// recordError is why one record failed: a kind (errors_by_kind in the summary, the reject
// file's error.kind) and a message that never holds a value of the record.
type recordError struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

// bulkBatch is a run of consecutive records, transformed by one worker.
type bulkBatch struct {
	in   []byte
	recs []bulkRec
	out  []byte // the output records, each followed by '\n'
	done chan struct{}
}

// reset empties b for reuse. Both buffers may hold plaintext (seal's input, open's output):
// they are cleared.
func (b *bulkBatch) reset() {
	clear(b.in[:cap(b.in)])
	clear(b.out[:cap(b.out)])
	b.in, b.out, b.recs = b.in[:0], b.out[:0], b.recs[:0]
	b.done = make(chan struct{})
}

// batchFunc transforms every record of b whose err is nil: it appends each one's output and a
// newline to b.out, in record order, and sets its outEnd and fields, or sets its err.
type batchFunc func(ctx context.Context, b *bulkBatch)

// perRecord makes a batchFunc from a function that transforms one record, appending the result
// to dst (and nothing when it fails); its errors are classified by classifyBulk.
func perRecord(fn func(ctx context.Context, rec, dst []byte) ([]byte, int, error)) batchFunc {
	return func(ctx context.Context, b *bulkBatch) {
		for i := range b.recs {
			r := &b.recs[i]
			if r.err != nil {
				continue
			}
			out, n, err := fn(ctx, b.in[r.start:r.end], b.out)
			if err != nil { // fn wrote nothing to dst
				r.err = classifyBulk(err)
				continue
			}
			b.out = append(out, '\n')
			r.outEnd, r.fields = len(b.out), n
		}
	}
}

// bulkRun is one NDJSON run: the records of in from line fromLine on, transformed by jobs
// workers, written to out in input order.
type bulkRun struct {
	jobs      int
	maxRecord int
	fromLine  int64
	process   batchFunc
	// reject, when not nil, receives one line per failed record and the run goes on; when nil
	// the first failed record stops the run.
	reject io.Writer
	sum    *bulkSummary
	// Progress counters, read by the progress line while the run goes on.
	bytesRead   atomic.Int64
	recordsDone atomic.Int64
}

// inflight is how many batches a run of jobs workers has at most.
func inflight(jobs int) int { return jobs + min(jobs, 8) + 2 }

// errStopped is returned by the writer when a record failed without --reject.
var errStopped = errors.New("stopped at a failed record")

// run runs the pipeline: one reader, jobs workers, and the writer (this goroutine's caller
// waits for all). It returns a *stopError when a record failed without a reject file.
func (r *bulkRun) run(ctx context.Context, in io.Reader, out io.Writer) error {
	g, ctx := errgroup.WithContext(ctx)
	inflight := inflight(r.jobs)
	free := make(chan *bulkBatch, inflight)
	for range inflight {
		free <- &bulkBatch{done: make(chan struct{})}
	}
	work := make(chan *bulkBatch, inflight)
	order := make(chan *bulkBatch, inflight)
	g.Go(func() error {
		defer close(work)
		defer close(order)
		return r.read(ctx, in, free, work, order)
	})
	for range r.jobs {
		g.Go(func() error {
			for b := range work {
				if ctx.Err() == nil {
					r.process(ctx, b)
				}
				close(b.done)
			}
			return nil
		})
	}
	var stop *stopError
	g.Go(func() error {
		err := r.write(ctx, out, free, order)
		if errors.As(err, &stop) {
			return errStopped
		}
		return err
	})
	err := g.Wait()
	if stop != nil {
		return stop
	}
	return err
}

// read fills batches from in and sends each to the workers and, in order, to the writer.
func (r *bulkRun) read(ctx context.Context, in io.Reader, free <-chan *bulkBatch, work, order chan<- *bulkBatch) error {
	rr := newRecordReader(in, r.maxRecord)
	var b *bulkBatch
	send := func() error {
		if b == nil || len(b.recs) == 0 {
			return nil
		}
		r.bytesRead.Store(rr.bytes)
		select {
		case order <- b:
		case <-ctx.Done():
			return ctx.Err()
		}
		work <- b // never blocks: work holds as many batches as exist
		b = nil
		return nil
	}
	for {
		rec, line, tooLong, err := rr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if line < r.fromLine {
			r.sum.SkippedLines++
			continue
		}
		if !tooLong && isBlank(rec) {
			r.sum.BlankLines++
			continue
		}
		if b == nil {
			select {
			case b = <-free:
				b.reset()
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		br := bulkRec{line: line, start: len(b.in)}
		if tooLong {
			br.err = &recordError{Kind: kindTooLarge, Message: fmt.Sprintf("line is longer than --max-record %d bytes", r.maxRecord)}
		} else {
			b.in = append(b.in, rec...)
		}
		br.end = len(b.in)
		b.recs = append(b.recs, br)
		if len(b.in) >= batchBytes || len(b.recs) >= batchRecords {
			if err := send(); err != nil {
				return err
			}
		}
	}
	if err := send(); err != nil {
		return err
	}
	r.bytesRead.Store(rr.bytes)
	return nil
}

// stopError is a run stopped at a failed record (no reject file).
type stopError struct {
	line int64
	err  *recordError
}

func (e *stopError) Error() string {
	return fmt.Sprintf("line %d: %s: %s (records before it were written; fix it and resume with --from-line %d, or keep going with --reject FILE)",
		e.line, e.err.Kind, e.err.Message, e.line)
}

// write writes the batches' output in input order, and the failed records to the reject file.
func (r *bulkRun) write(ctx context.Context, out io.Writer, free chan<- *bulkBatch, order <-chan *bulkBatch) error {
	bw := bufio.NewWriterSize(out, 1<<20)
	for b := range order {
		select {
		case <-b.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := r.writeBatch(bw, b); err != nil {
			if flushErr := bw.Flush(); flushErr != nil {
				return fmt.Errorf("write output: %w", flushErr)
			}
			return err
		}
		free <- b
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// writeBatch writes one batch's output and accounts for its records.
func (r *bulkRun) writeBatch(bw *bufio.Writer, b *bulkBatch) error {
	okEnd := 0 // b.out[:okEnd] is the output of the records before the current one
	for i := range b.recs {
		rec := &b.recs[i]
		r.sum.Records++
		if rec.err == nil {
			r.sum.Written++
			r.sum.Fields += int64(rec.fields)
			okEnd = rec.outEnd
			continue
		}
		r.sum.fail(rec.err.Kind, rec.line)
		if r.reject == nil {
			if _, err := bw.Write(b.out[:okEnd]); err != nil {
				return fmt.Errorf("write output: %w", err)
			}
			r.sum.BytesOut += int64(okEnd)
			return &stopError{line: rec.line, err: rec.err}
		}
		if err := writeReject(r.reject, rec.line, rec.err); err != nil {
			return err
		}
	}
	if _, err := bw.Write(b.out); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	r.sum.BytesOut += int64(len(b.out))
	r.recordsDone.Store(r.sum.Records)
	return nil
}
