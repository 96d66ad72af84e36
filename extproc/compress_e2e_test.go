package extproc

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/envoy"
	"github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/internal/testing/envoytest"
)

// sendBytes sends a request with a binary body through the stack; headers are name, value pairs.
func (s *stack) sendBytes(t testing.TB, method, path string, body []byte, headers ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, s.base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	r := envoytest.Send(t, s.client, req)
	return reply{status: r.Status, header: r.Header, body: r.Body}
}

// gunzip decodes a gzip body, failing t if it is not one.
func gunzip(t testing.TB, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not gzip: %v (%q)", err, b)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gzip: %v", err)
	}
	return out
}

// TestEnvoyCompression runs envoy/ingress.yaml (with its compressor filter before ext_proc) in the
// real Envoy: a client that accepts gzip gets its decrypted response compressed, an app that
// always compresses works, compressed requests are encrypted, and a decompression bomb is
// refused with a JSON error before it reaches the app.
func TestEnvoyCompression(t *testing.T) {
	testenv.Integration(t)
	s := startStack(t, "ingress.yaml", Options{})
	tenant := envoytest.Bearer(t, "t1")
	// Over the compressor's min_content_length (1 KiB): smaller responses go uncompressed.
	record := largePatient()
	if r := s.do(t, "POST", "/patients", record, tenant...); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	wantRecord := `{"id":"1",` + record[1:]
	gz := append([]string{"Accept-Encoding", "gzip"}, tenant...)

	t.Run("client that accepts gzip gets a compressed, decrypted response", func(t *testing.T) {
		r := s.do(t, "GET", "/patients/1", "", gz...)
		if r.status != 200 || r.header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("status %d, content-encoding %q: %q", r.status, r.header.Get("Content-Encoding"), r.body)
		}
		if got := gunzip(t, r.body); string(got) != wantRecord {
			t.Errorf("decompressed %s, want %s", got, wantRecord)
		}
		if !strings.Contains(strings.ToLower(r.header.Get("Vary")), "accept-encoding") {
			t.Errorf("vary %q lacks accept-encoding", r.header.Get("Vary"))
		}
		// The compressor read accept-encoding before ext_proc removed it for the app.
		rcv := s.app.Received()
		if ae := rcv[len(rcv)-1].Header.Get("Accept-Encoding"); ae != "" {
			t.Errorf("accept-encoding %q reached the app", ae)
		}
	})
	t.Run("client without accept-encoding gets it uncompressed", func(t *testing.T) {
		r := s.do(t, "GET", "/patients/1", "", tenant...)
		if r.status != 200 || r.header.Get("Content-Encoding") != "" || string(r.body) != wantRecord {
			t.Fatalf("status %d, content-encoding %q: %s", r.status, r.header.Get("Content-Encoding"), r.body)
		}
		checkLength(t, r)
	})
	t.Run("app that always compresses", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			headers []string
			gzipped bool
		}{{"client accepts gzip", gz, true}, {"client accepts nothing", tenant, false}} {
			r := s.do(t, "GET", "/patients/1?encoding=gzip", "", tc.headers...)
			if r.status != 200 || (r.header.Get("Content-Encoding") == "gzip") != tc.gzipped {
				t.Fatalf("%s: status %d, content-encoding %q: %q", tc.name, r.status, r.header.Get("Content-Encoding"), r.body)
			}
			body := r.body
			if tc.gzipped {
				body = gunzip(t, body)
			}
			if string(body) != wantRecord {
				t.Errorf("%s: got %s, want %s", tc.name, body, wantRecord)
			}
		}
	})
	t.Run("compressed requests are encrypted", func(t *testing.T) {
		for _, c := range []string{"gzip", "deflate", "br", "zstd"} {
			before := len(s.app.Received())
			r := s.sendBytes(t, "POST", "/patients", compress(t, c, []byte(patient)),
				append([]string{"Content-Type", "application/json", "Content-Encoding", c}, tenant...)...)
			if r.status != 201 {
				t.Fatalf("%s: status %d %s", c, r.status, r.body)
			}
			rcv := s.app.Received()
			if len(rcv) != before+1 {
				t.Fatalf("%s: the app got %d requests", c, len(rcv)-before)
			}
			got := rcv[before]
			if ce := got.Header.Get("Content-Encoding"); ce != "" {
				t.Errorf("%s: content-encoding %q reached the app with a decoded body", c, ce)
			}
			if cl := got.Header.Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(got.Body)) {
				t.Errorf("%s: content-length %s for %d bytes", c, cl, len(got.Body))
			}
			id, _ := field(t, got.Body, "ssn").(string)
			if !envelope.IsCiphertext([]byte(id)) {
				t.Errorf("%s: the app got ssn %q, want a ciphertext", c, id)
			}
			recID, _ := field(t, r.body, "id").(string)
			if back := s.do(t, "GET", "/patients/"+recID, "", tenant...); back.status != 200 || field(t, back.body, "ssn") != "123-45-6789" {
				t.Errorf("%s: read back %d %s", c, back.status, back.body)
			}
		}
		noPlaintextAtApp(t, s)
	})
	t.Run("bomb is refused", func(t *testing.T) {
		before := len(s.app.Received())
		bomb := compress(t, "gzip", append([]byte(`{"ssn":"123-45-6789","pad":"`), make([]byte, 256<<20)...))
		if len(bomb) >= 1<<20 {
			t.Fatalf("bomb of %d bytes does not fit Envoy's buffer", len(bomb))
		}
		r := s.sendBytes(t, "POST", "/patients", bomb, append([]string{"Content-Type", "application/json", "Content-Encoding", "gzip"}, tenant...)...)
		if r.status != 413 || r.header.Get("Content-Type") != "application/json" ||
			!strings.Contains(string(r.body), "request body too large once decompressed") {
			t.Fatalf("status %d %q: %s", r.status, r.header.Get("Content-Type"), r.body)
		}
		if n := len(s.app.Received()) - before; n != 0 {
			t.Errorf("the app got %d requests", n)
		}
	})
	t.Run("unknown and stacked codings are refused", func(t *testing.T) {
		for _, ce := range []string{"compress", "gzip, br"} {
			r := s.sendBytes(t, "POST", "/patients", compress(t, "gzip", []byte(patient)),
				append([]string{"Content-Type", "application/json", "Content-Encoding", ce}, tenant...)...)
			if r.status != 415 || !strings.Contains(string(r.body), "content-encoding") {
				t.Errorf("%q: status %d %s", ce, r.status, r.body)
			}
		}
		// rkms's JSON refusals are small (under min_content_length): they go uncompressed even
		// to a client that accepts gzip, so that a flood of refused requests costs Envoy no
		// compression.
		r := s.sendBytes(t, "POST", "/patients", []byte(patient),
			append([]string{"Content-Type", "application/json", "Content-Encoding", "compress", "Accept-Encoding", "gzip"}, tenant...)...)
		if r.status != 415 || r.header.Get("Content-Encoding") != "" || !strings.Contains(string(r.body), `"error"`) {
			t.Errorf("refusal to a gzip client: status %d, content-encoding %q", r.status, r.header.Get("Content-Encoding"))
		}
	})
	// Every reservation, decoding's included, is given back once the streams end.
	deadline := time.Now().Add(2 * time.Second)
	for s.srv.Stats().ReservedBytes != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if used := s.srv.Stats().ReservedBytes; used != 0 {
		t.Errorf("%d bytes of the memory budget still reserved", used)
	}
}

// noPlaintextAtApp fails if a body the stack's app received holds a secret of the patient.
func noPlaintextAtApp(t *testing.T, s *stack) {
	t.Helper()
	for _, rcv := range s.app.Received() {
		for _, sec := range patientSecrets {
			if bytes.Contains(rcv.Body, []byte(sec)) {
				t.Errorf("app received plaintext %q in %s %s", sec, rcv.Method, rcv.Path)
			}
		}
	}
}

// compressorBlock is the compressor filter of the shipped files (from its name to its library's
// type).
var compressorBlock = regexp.MustCompile(`(?s)\n *- name: envoy\.filters\.http\.compressor\n.*?compressor\.v3\.Gzip\n`)

// TestEnvoyCompressorOrder is why the shipped files list the compressor before ext_proc: listed
// after it, the compressor never compresses a decrypted response, because rkms's request
// header answer removed accept-encoding before the compressor's decode phase read it (and its
// encode phase would run before ext_proc's).
func TestEnvoyCompressorOrder(t *testing.T) {
	testenv.Integration(t)
	cfg, err := envoy.Config("ingress.yaml")
	if err != nil {
		t.Fatal(err)
	}
	block := compressorBlock.Find(cfg)
	if block == nil {
		t.Fatal("no compressor filter in ingress.yaml")
	}
	moved := bytes.Replace(cfg, block, []byte("\n"), 1)
	const rbac = "\n                  - name: envoy.filters.http.rbac\n"
	if !bytes.Contains(moved, []byte(rbac)) {
		t.Fatal("no rbac filter in ingress.yaml")
	}
	moved = bytes.Replace(moved, []byte(rbac), append(block, rbac[1:]...), 1)
	s := startStackYAML(t, moved, "app", Options{})
	tenant := envoytest.Bearer(t, "t1")
	if r := s.do(t, "POST", "/patients", patient, tenant...); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	r := s.do(t, "GET", "/patients/1", "", append([]string{"Accept-Encoding", "gzip"}, tenant...)...)
	if r.status != 200 || r.header.Get("Content-Encoding") != "" {
		t.Fatalf("compressor after ext_proc: status %d, content-encoding %q (want none: accept-encoding was removed before it)",
			r.status, r.header.Get("Content-Encoding"))
	}
	// On a route whose responses rkms does not rewrite, accept-encoding reaches it: it compresses.
	if r := s.do(t, "POST", "/notes", `{"text":"`+strings.Repeat("a note ", 200)+`"}`); r.status != 201 {
		t.Fatalf("note: %d %s", r.status, r.body)
	}
	r = s.do(t, "GET", "/notes", "", "Accept-Encoding", "gzip")
	if r.status != 200 || r.header.Get("Content-Encoding") != "gzip" {
		t.Errorf("route without policy: status %d, content-encoding %q", r.status, r.header.Get("Content-Encoding"))
	}
}

// TestEnvoyEgressCompression runs envoy/egress.yaml with compression both ways: the app sends a
// gzip request holding a ciphertext and accepts gzip, the external API always answers gzip.
// The API gets the decrypted body uncompressed; the app gets a gzip response whose tagged field
// rkms encrypted.
func TestEnvoyEgressCompression(t *testing.T) {
	testenv.Integration(t)
	s := startStack(t, "egress.yaml", Options{}) // the recorder plays the external API
	k, err := StackKeys(s.keyring).Current(context.Background(), "partner-acme")
	if err != nil {
		t.Fatal(err)
	}
	ct, err := envelope.Seal(nil, k, envelope.Randomized, "token", nil, []byte(`"tok_live_123"`))
	if err != nil {
		t.Fatal(err)
	}
	// A memo takes the response over the compressor's min_content_length (1 KiB).
	memo := strings.Repeat("monthly subscription renewal; ", 40)
	body := compress(t, "gzip", []byte(`{"token":"`+string(ct)+`","amount":5,"memo":"`+memo+`"}`))
	r := s.sendBytes(t, "POST", "/partner?encoding=gzip", body, "Content-Type", "application/json",
		"Content-Encoding", "gzip", "Accept-Encoding", "gzip", "x-partner", "acme")
	if r.status != 201 || r.header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("status %d, content-encoding %q: %q", r.status, r.header.Get("Content-Encoding"), r.body)
	}
	got := s.app.Received()
	if len(got) != 1 || string(got[0].Body) != `{"token":"tok_live_123","amount":5,"memo":"`+memo+`"}` || got[0].Header.Get("Content-Encoding") != "" {
		t.Fatalf("external API got %q (content-encoding %q)", got[0].Body, got[0].Header.Get("Content-Encoding"))
	}
	plain := gunzip(t, r.body)
	tok, _ := field(t, plain, "token").(string)
	if !envelope.IsCiphertext([]byte(tok)) || bytes.Contains(plain, []byte("tok_live_123")) {
		t.Errorf("the app got plaintext back: %s", plain)
	}
}

// largePatient is the test patient with an untagged note that takes it over the shipped
// compressor's min_content_length (1 KiB).
func largePatient() string {
	return patient[:len(patient)-1] + `,"note":"` + strings.Repeat("seen for a routine check; ", 60) + `"}`
}
