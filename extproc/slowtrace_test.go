package extproc

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCheckSlowTrace(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		o    *SlowTraceOptions
		want []string // substrings of the error; none: valid
	}{
		{"off", nil, nil},
		{"minimal", &SlowTraceOptions{Threshold: 50 * time.Millisecond, Dir: dir}, nil},
		{"full", &SlowTraceOptions{Threshold: time.Second, Dir: dir, MaxFiles: SlowTraceMaxFilesLimit, MinInterval: time.Second}, nil},
		{"no threshold", &SlowTraceOptions{Dir: dir}, []string{"threshold"}},
		{"negative threshold", &SlowTraceOptions{Threshold: -1, Dir: dir}, []string{"threshold"}},
		{"no dir", &SlowTraceOptions{Threshold: 1}, []string{"dir must be set"}},
		{"missing dir", &SlowTraceOptions{Threshold: 1, Dir: filepath.Join(dir, "nope")}, []string{"dir:"}},
		{"dir is a file", &SlowTraceOptions{Threshold: 1, Dir: file}, []string{"not a directory"}},
		{"too many files", &SlowTraceOptions{Threshold: 1, Dir: dir, MaxFiles: SlowTraceMaxFilesLimit + 1}, []string{"max_files"}},
		{"negative files", &SlowTraceOptions{Threshold: 1, Dir: dir, MaxFiles: -1}, []string{"max_files"}},
		{"negative interval", &SlowTraceOptions{Threshold: 1, Dir: dir, MinInterval: -1}, []string{"min_interval"}},
		{"all wrong at once", &SlowTraceOptions{MaxFiles: -1, MinInterval: -1}, []string{"threshold", "max_files", "min_interval", "dir"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckSlowTrace(tc.o)
			if (err == nil) != (len(tc.want) == 0) {
				t.Fatalf("CheckSlowTrace = %v, want errors %q", err, tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if tc.o != nil && len(tc.want) > 0 {
				if _, err := NewServer(loadPolicies(t), newFakeKeys(), Options{SlowTrace: tc.o}); err == nil {
					t.Error("NewServer accepted options CheckSlowTrace refuses")
				}
			}
		})
	}
}

// slowTraceEnv is a test env whose server traces every stream as slow (threshold 1 ns).
func slowTraceEnv(t *testing.T, maxFiles int, interval time.Duration) (*testEnv, string) {
	dir := t.TempDir()
	e := newTestEnv(t, Options{SlowTrace: &SlowTraceOptions{Threshold: time.Nanosecond, Dir: dir, MaxFiles: maxFiles, MinInterval: interval}})
	t.Cleanup(func() { e.srv.Close() })
	return e, dir
}

// settle waits until every stream has ended (each told the tracer its duration first) and any
// capture is written.
func settle(t *testing.T, s *Server) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); s.streams.Load() != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("streams did not end")
		}
	}
	s.slow.wg.Wait()
}

func traces(t *testing.T, dir string) []string {
	t.Helper()
	got, err := filepath.Glob(filepath.Join(dir, slowTracePrefix+"*"+slowTraceSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestSlowTraceCapture: a slow stream leaves a Go execution trace with rkms's annotations and
// nothing of the request: no field value, no key id, no tenant.
func TestSlowTraceCapture(t *testing.T) {
	e, dir := slowTraceEnv(t, 5, time.Hour)
	for range 3 {
		e.mustDo(jsonReq("POST", "/patients", "t1", patient), 201)
	}
	settle(t, e.srv)
	files := traces(t, dir)
	if len(files) != 1 {
		t.Fatalf("%d trace files after 3 slow streams within min_interval, want 1: %v", len(files), files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(files[0]); fi.Mode().Perm() != 0o600 {
		t.Errorf("trace file mode %v, want 0600", fi.Mode().Perm())
	}
	if !bytes.HasPrefix(b, []byte("go 1.")) {
		t.Fatalf("not a Go execution trace: %q", b[:min(len(b), 16)])
	}
	for _, want := range []string{TraceTaskStream, TraceRegionMsg, TraceLogSlow} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("trace lacks the annotation %q", want)
		}
	}
	for _, secret := range append([]string{"tenant-t1", "x-tenant-id"}, patientSecrets...) {
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("trace holds %q", secret)
		}
	}
}

// TestSlowTraceBounds: no more than max_files trace files in the directory, counting those
// already there.
func TestSlowTraceBounds(t *testing.T) {
	e, dir := slowTraceEnv(t, 3, time.Nanosecond)
	if err := os.WriteFile(filepath.Join(dir, slowTracePrefix+"old"+slowTraceSuffix), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 6 {
		e.mustDo(jsonReq("POST", "/patients", "t1", patient), 201)
		settle(t, e.srv)
	}
	if got := traces(t, dir); len(got) != 3 {
		t.Errorf("%d trace files, want max_files 3: %v", len(got), got)
	}
}

// TestSlowTraceOffByDefault: without the option no flight recorder runs and Close is harmless.
func TestSlowTraceOffByDefault(t *testing.T) {
	e := newTestEnv(t, Options{})
	if e.srv.slow != nil {
		t.Fatal("a slow tracer runs without Options.SlowTrace")
	}
	e.mustDo(jsonReq("POST", "/patients", "t1", patient), 201)
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
}
