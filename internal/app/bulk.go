package app

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/rkms/rkms/extproc"
)

// bulkFlags are the input, output and NDJSON flags shared by rkms seal, open and rewrap.
type bulkFlags struct {
	format      string // "json", "ndjson"; "" until resolved
	in, out     string // "" or "-": standard input / output
	jobs        int
	progress    *bool // nil: when stderr is a terminal
	summaryJSON string
	fromLine    int64
	reject      string
	maxRecord   int
}

func (b *bulkFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&b.format, "format", "", "input format: json (one document) or ndjson (one record per line); default from the --in extension (.ndjson, .jsonl: ndjson), else json")
	fs.StringVar(&b.in, "in", "", "input file (default: standard input)")
	fs.StringVar(&b.out, "out", "", "output file, created or truncated (default: standard output)")
	fs.IntVar(&b.jobs, "j", runtime.GOMAXPROCS(0), fmt.Sprintf("ndjson: parallel workers, 1..%d (output stays in input order)", maxJobs))
	fs.BoolFunc("progress", "show the progress line on stderr even when it is not a terminal", func(string) error {
		t := true
		b.progress = &t
		return nil
	})
	fs.BoolFunc("no-progress", "never show the progress line", func(string) error {
		f := false
		b.progress = &f
		return nil
	})
	fs.StringVar(&b.summaryJSON, "summary-json", "", "write the run's summary as JSON to this file")
	fs.Int64Var(&b.fromLine, "from-line", 1, "ndjson: start at this input line (resume: lines before it are skipped)")
	fs.StringVar(&b.reject, "reject", "", "ndjson: write failed records' line numbers and errors to this file and go on (default: stop at the first)")
	fs.IntVar(&b.maxRecord, "max-record", 1<<20, fmt.Sprintf("ndjson: longest line in bytes, at most %d; a longer line is a failed record", maxRecordBound))
}

// resolve settles the format and returns what is wrong with the flags, or "".
func (b *bulkFlags) resolve() string {
	if b.format == "" {
		switch strings.ToLower(filepath.Ext(b.in)) {
		case ".ndjson", ".jsonl":
			b.format = "ndjson"
		default:
			b.format = "json"
		}
	}
	switch {
	case b.format != "json" && b.format != "ndjson":
		return fmt.Sprintf("--format %q: want json or ndjson", b.format)
	case b.jobs < 1 || b.jobs > maxJobs:
		return fmt.Sprintf("-j %d: want 1..%d", b.jobs, maxJobs)
	case b.maxRecord < 1 || b.maxRecord > maxRecordBound:
		return fmt.Sprintf("--max-record %d: want 1..%d", b.maxRecord, maxRecordBound)
	case b.fromLine < 1:
		return fmt.Sprintf("--from-line %d: lines are numbered from 1", b.fromLine)
	case b.format == "json" && (b.fromLine != 1 || b.reject != ""):
		return "--from-line and --reject are for --format ndjson"
	case b.in != "" && b.in != "-" && b.in == b.out:
		return "--in and --out name the same file"
	}
	return ""
}

// Kinds of a failed record that are not the transform's (extproc.ErrorKind names those).
const (
	kindTooLarge = "too_large" // a line over --max-record
	kindKeyID    = "key_id"    // the policy's key id or context template cannot be computed
)

// keyIDError marks a failure to compute a record's key id or context.
type keyIDError struct{ err error }

func (e *keyIDError) Error() string { return e.err.Error() }
func (e *keyIDError) Unwrap() error { return e.err }

// classifyBulk turns a record's error into its kind and message (which never holds a value:
// the transform's errors do not, and the templates' name the source, not its value).
func classifyBulk(err error) *recordError {
	kind := extproc.ErrorKind(err)
	switch {
	case errors.Is(err, errRecordInput):
		kind = "bad_input"
	case errors.Is(err, errTooManyFields):
		kind = kindTooLarge
	case errors.Is(err, errRewrapAnswer):
		kind = "internal"
	}
	if ke := (*keyIDError)(nil); errors.As(err, &ke) && kind != "not_json" {
		kind = kindKeyID
	}
	return &recordError{Kind: kind, Message: err.Error()}
}

// bulkSummary is what a run did: printed on stderr at the end, and written by --summary-json.
type bulkSummary struct {
	Command      string           `json:"command"` // seal, open, rewrap
	Format       string           `json:"format"`
	Records      int64            `json:"records"`       // records read (blank and skipped lines not counted)
	Written      int64            `json:"written"`       // records written to the output
	Failed       int64            `json:"failed"`        // records that failed (rejected, or the one that stopped the run)
	Fields       int64            `json:"fields"`        // values sealed, opened or rewrapped
	FieldsVerb   string           `json:"fields_verb"`   // "sealed", "opened" or "rewrapped"
	SkippedLines int64            `json:"skipped_lines"` // lines before --from-line
	BlankLines   int64            `json:"blank_lines"`
	BytesIn      int64            `json:"bytes_in"`
	BytesOut     int64            `json:"bytes_out"`
	Seconds      float64          `json:"seconds"`
	Errors       map[string]int64 `json:"errors_by_kind"`
	FirstFailure int64            `json:"first_failed_line,omitempty"`
	// Stopped is the line the run stopped at (a failed record without --reject, or an error
	// that ends the run); 0 when it read all its input.
	Stopped int64  `json:"stopped_at_line,omitempty"`
	Error   string `json:"error,omitempty"` // what ended the run early, if anything
	// ResumeFrom is the --from-line that continues the run after its last written record
	// (ndjson); 0 when the run is complete.
	ResumeFrom int64 `json:"resume_from_line,omitempty"`
}

func newBulkSummary(command, format, verb string) *bulkSummary {
	return &bulkSummary{Command: command, Format: format, FieldsVerb: verb, Errors: map[string]int64{}}
}

// fail counts a failed record.
func (s *bulkSummary) fail(kind string, line int64) {
	s.Failed++
	s.Errors[kind]++
	if s.FirstFailure == 0 {
		s.FirstFailure = line
	}
}

// print writes the summary line to w.
func (s *bulkSummary) print(w io.Writer) {
	var kinds []string
	for _, k := range slices.Sorted(maps.Keys(s.Errors)) {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, s.Errors[k]))
	}
	errs := "none"
	if len(kinds) > 0 {
		errs = strings.Join(kinds, ", ")
	}
	rate := ""
	if s.Seconds > 0 {
		rate = fmt.Sprintf(" (%.1f MB/s, %.0f records/s)", float64(s.BytesIn)/1e6/s.Seconds, float64(s.Records)/s.Seconds)
	}
	fmt.Fprintf(w, "rkms %s: %d records, %d written, %d failed; %d fields %s; %s in, %s out in %.1fs%s; errors: %s\n",
		s.Command, s.Records, s.Written, s.Failed, s.Fields, s.FieldsVerb, byteSize(s.BytesIn), byteSize(s.BytesOut), s.Seconds, rate, errs)
	if s.Stopped > 0 {
		fmt.Fprintf(w, "rkms %s: stopped at line %d; resume with --from-line %d\n", s.Command, s.Stopped, s.ResumeFrom)
	}
}

// writeFile writes the summary as JSON to path.
func (s *bulkSummary) writeFile(path string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("summary: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("--summary-json: %w", err)
	}
	return nil
}

// writeReject writes one reject line: {"line":N,"error":{"kind":...,"message":...}}. The
// record itself is never copied: it may hold plaintext (seal's input, a tagged field left in
// clear in open's), and the line number finds it in the input.
func writeReject(w io.Writer, line int64, e *recordError) error {
	b, err := json.Marshal(struct {
		Line  int64        `json:"line"`
		Error *recordError `json:"error"`
	}{line, e})
	if err != nil {
		return fmt.Errorf("reject record: %w", err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write --reject file: %w", err)
	}
	return nil
}

// byteSize prints n bytes as kB, MB or GB (decimal).
func byteSize(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}
