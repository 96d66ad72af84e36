package extproc

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/rkms/rkms/envoy"
	"github.com/rkms/rkms/extproc/policy"
	"github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/internal/testing/envoytest"
)

// Streaming routes through the real Envoy (envoy/ingress.yaml's /imports and /exports,
// FULL_DUPLEX_STREAMED): NDJSON imports sealed on the way in, exports opened on the way out, and
// every refusal. The memory acceptance run (rkms in its own process) is stream_rss_test.go.

// bulkFields are the four tagged fields of every bulk line.
var bulkFields = []string{"$.ssn", "$.email", "$.card", "$.dob"}

// bulkPolicies are the policies ingress.yaml's streaming routes name.
func bulkPolicies() []policy.Config {
	var fs []policy.Field
	for _, f := range bulkFields {
		fs = append(fs, policy.Field{Path: f})
	}
	return []policy.Config{
		{Name: "imports", KeyID: "tenant-{jwt:tenant}", Request: policy.Direction{Stream: true, Encrypt: fs}},
		{Name: "exports", KeyID: "tenant-{jwt:tenant}", DecryptOnly: true, Response: policy.Direction{Stream: true, Decrypt: fs}},
	}
}

// bulkLine is line i of a bulk import: four tagged values whose text names their line, so that
// any plaintext that reached the app can be found.
func bulkLine(i int) string {
	return fmt.Sprintf(`{"id":"%d","ssn":"SSN#%07d","email":"mail#%07d@example.com","card":"CARD#%07d","dob":"DOB#%07d","note":"kept as is"}`+"\n", i, i, i, i, i)
}

// plaintextMarkers are the prefixes of bulkLine's tagged values.
// '#' is in no ciphertext's alphabet, so a marker never matches a ciphertext by chance.
var plaintextMarkers = [][]byte{[]byte("SSN#"), []byte("mail#"), []byte("CARD#"), []byte("DOB#")}

// bulkReader yields lines [0, n) of bulkLine, with line bad (1-based, 0 for none) broken.
type bulkReader struct {
	i, n, bad int
	buf       []byte
}

func (r *bulkReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.i == r.n {
			return 0, io.EOF
		}
		line := bulkLine(r.i)
		if r.i+1 == r.bad {
			line = strings.Replace(line, `"card":"`, `"card":`, 1) // an unquoted string: not JSON
		}
		r.buf = append(r.buf[:0], line...)
		r.i++
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// bulkApp stores what an import sends (at most keep bytes of it, all of it counted) and answers
// an export (?lines=N) with N lines cycling through the stored ones.
type bulkApp struct {
	keep int

	mu       sync.Mutex
	got      []byte
	total    int64
	readErr  error
	imports  int
	exported int
}

func (a *bulkApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasPrefix(r.URL.Path, "/imports"):
		buf := make([]byte, 256<<10)
		var total int64
		var err error
		for {
			var n int
			n, err = r.Body.Read(buf)
			a.mu.Lock()
			if room := a.keep - len(a.got); room > 0 {
				a.got = append(a.got, buf[:min(n, room)]...)
			}
			a.mu.Unlock()
			total += int64(n)
			if err != nil {
				break
			}
		}
		a.mu.Lock()
		a.total, a.imports = total, a.imports+1
		if err != io.EOF {
			a.readErr = err
		}
		a.mu.Unlock()
		if err != io.EOF {
			return
		}
		w.Header().Set("content-type", "application/json")
		fmt.Fprintf(w, `{"imported_bytes":%d}`, total)
	case strings.HasPrefix(r.URL.Path, "/exports"):
		n, _ := strconv.Atoi(r.URL.Query().Get("lines"))
		a.mu.Lock()
		lines := bytes.SplitAfter(a.got, []byte("\n"))
		a.mu.Unlock()
		if len(lines) > 0 && len(lines[len(lines)-1]) == 0 || len(lines) > 0 && !bytes.HasSuffix(lines[len(lines)-1], []byte("\n")) {
			lines = lines[:len(lines)-1] // the last line may be cut by keep
		}
		w.Header().Set("content-type", "application/x-ndjson")
		bw := bufio.NewWriterSize(w, 64<<10)
		for i := 0; i < n && len(lines) > 0; i++ {
			if _, err := bw.Write(lines[i%len(lines)]); err != nil {
				return
			}
		}
		_ = bw.Flush()
		a.mu.Lock()
		a.exported += n
		a.mu.Unlock()
	default:
		http.NotFound(w, r)
	}
}

func (a *bulkApp) snapshot() (got []byte, total int64, readErr error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return bytes.Clone(a.got), a.total, a.readErr
}

func startBulkStack(t *testing.T, app *bulkApp, pols []policy.Config) *stack {
	t.Helper()
	testenv.Integration(t)
	cfg, err := envoy.Config("ingress.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return startStackWith(t, cfg, Options{}, stackConfig{upstream: "app", app: app, policies: pols})
}

// post streams body to path through Envoy as NDJSON with the tenant's token.
func (s *stack) post(t *testing.T, path string, body io.Reader, contentType string) (int, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("content-type", contentType)
	req.Header.Set("authorization", envoytest.Bearer(t, "acme")[1])
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// get fetches path through Envoy with the tenant's token and hands the body to read.
func (s *stack) getStream(t *testing.T, path string, read func(io.Reader) error) (int, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("authorization", envoytest.Bearer(t, "acme")[1])
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return resp.StatusCode, read(resp.Body)
}

// TestStreamImportExport: an NDJSON import is sealed line by line on the way in (the app sees
// no plaintext, every tagged value a ciphertext) and an export of those lines is opened on the
// way out, byte for byte the lines sent.
func TestStreamImportExport(t *testing.T) {
	app := &bulkApp{keep: 1 << 30}
	s := startBulkStack(t, app, bulkPolicies())
	const lines = 20000 // about 2.6 MB
	status, body, err := s.post(t, "/imports", &bulkReader{n: lines}, "application/x-ndjson")
	if err != nil || status != 200 {
		t.Fatalf("import: status %d, %s, %v", status, body, err)
	}
	got, _, _ := app.snapshot()
	for _, m := range plaintextMarkers {
		if bytes.Contains(got, m) {
			t.Fatalf("the app received plaintext (%s...)", m)
		}
	}
	if n := bytes.Count(got, []byte("\n")); n != lines {
		t.Fatalf("the app received %d lines, want %d", n, lines)
	}
	if n := bytes.Count(got, []byte(`"kept as is"`)); n != lines {
		t.Fatalf("untagged members changed: %d of %d lines keep them", n, lines)
	}
	status, err = s.getStream(t, fmt.Sprintf("/exports?lines=%d", lines), func(r io.Reader) error {
		br := bufio.NewReader(r)
		for i := 0; i < lines; i++ {
			line, err := br.ReadString('\n')
			if err != nil {
				return fmt.Errorf("line %d: %w", i+1, err)
			}
			if line != bulkLine(i) {
				return fmt.Errorf("line %d: got %q, want %q", i+1, line, bulkLine(i))
			}
		}
		if rest, _ := io.ReadAll(br); len(rest) > 0 {
			return fmt.Errorf("%d bytes after the last line", len(rest))
		}
		return nil
	})
	if err != nil || status != 200 {
		t.Fatalf("export: status %d, %v", status, err)
	}
}

// TestStreamMalformedLine: line 5000 of an import is not JSON. The client gets 400 naming the
// line; the app, which got the 4999 lines before it (sealed) and then a reset, received no
// plaintext of any line.
func TestStreamMalformedLine(t *testing.T) {
	app := &bulkApp{keep: 1 << 30}
	s := startBulkStack(t, app, bulkPolicies())
	status, body, err := s.post(t, "/imports", &bulkReader{n: 10000, bad: 5000}, "application/x-ndjson")
	t.Logf("client: status %d, body %s, error %v", status, body, err)
	if status != http.StatusBadRequest || !strings.Contains(string(body), "line 5000") {
		t.Errorf("client got %d %s: want 400 naming line 5000", status, body)
	}
	got, total, readErr := app.snapshot()
	t.Logf("app: %d bytes, %d lines, read error %v", total, bytes.Count(got, []byte("\n")), readErr)
	for _, m := range plaintextMarkers {
		if bytes.Contains(got, m) {
			t.Fatalf("the app received plaintext (%s...)", m)
		}
	}
	if bytes.Count(got, []byte("\n")) >= 5000 {
		t.Fatalf("the app received %d lines: the broken line or those after it went on", bytes.Count(got, []byte("\n")))
	}
	if readErr == nil && total > 0 {
		t.Errorf("the app read a complete body (%d bytes) from a refused import", total)
	}

	// Response side: the export's headers have gone to the client when the broken line comes
	// by: the client sees its body cut (a reset), never a plaintext of the broken line.
	app.mu.Lock()
	app.got = append(app.got, `{"ssn":"not a ciphertext"}`+"\n"...)
	app.mu.Unlock()
	var read []byte
	status, err = s.getStream(t, "/exports?lines=20000", func(r io.Reader) error {
		var err error
		read, err = io.ReadAll(r)
		return err
	})
	t.Logf("export of a broken store: status %d, %d bytes read, error %v", status, len(read), err)
	if err == nil {
		t.Fatalf("the export completed (%d bytes) through a value that does not open", len(read))
	}
}

// TestStreamRefusals: what a streaming route refuses before anything goes on.
func TestStreamRefusals(t *testing.T) {
	pols := bulkPolicies()
	pols[0].MaxStreamBytes = 1 << 20
	notStreaming := bulkPolicies()
	notStreaming[0].Request.Stream = false
	for _, tc := range []struct {
		name        string
		pols        []policy.Config
		contentType string
		lines       int
		status      int
		msg         string
	}{
		{"policy without request.stream", notStreaming, "application/x-ndjson", 10, 500, "policy configuration error"},
		{"not JSON", pols, "text/plain", 10, 415, "content-type must be NDJSON"},
		{"json-seq", pols, "application/json-seq", 10, 415, "content-type must be NDJSON"},
		{"over max_stream_bytes", pols, "application/x-ndjson", 20000, 413, "max_stream_bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := &bulkApp{keep: 1 << 30}
			s := startBulkStack(t, app, tc.pols)
			status, body, err := s.post(t, "/imports", &bulkReader{n: tc.lines}, tc.contentType)
			if status != tc.status || !strings.Contains(string(body), tc.msg) {
				t.Fatalf("got %d %s (%v), want %d %q", status, body, err, tc.status, tc.msg)
			}
			got, _, _ := app.snapshot()
			for _, m := range plaintextMarkers {
				if bytes.Contains(got, m) {
					t.Fatalf("the app received plaintext (%s...)", m)
				}
			}
		})
	}
}
