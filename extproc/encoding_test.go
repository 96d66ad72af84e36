package extproc

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/extproc/decompress"
	"github.com/rkms/rkms/extproc/policy"
)

// compress encodes b with the content coding named c (gzip, deflate, br, zstd).
func compress(t testing.TB, c string, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	switch c {
	case "gzip":
		w = gzip.NewWriter(&buf)
	case "deflate":
		w = zlib.NewWriter(&buf)
	case "br":
		w = brotli.NewWriter(&buf)
	case "zstd":
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w = zw
	default:
		t.Fatalf("no coding %q", c)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// encodedReq is a JSON request whose body is encoded with coding (content-encoding: header).
func encodedReq(t testing.TB, path, tenant, header, coding, body string) httpReq {
	r := jsonReq("POST", path, tenant, body)
	r.headers = append(r.headers, [2]string{"content-encoding", header})
	if coding != "" {
		r.body = compress(t, coding, []byte(body))
	}
	return r
}

// TestCompressedRequest: a request body in any supported coding is decoded, encrypted and sent
// on uncompressed; the app never sees plaintext and the stored ciphertexts open.
func TestCompressedRequest(t *testing.T) {
	for _, c := range []string{"gzip", "deflate", "br", "zstd"} {
		t.Run(c, func(t *testing.T) {
			e := newTestEnv(t, Options{})
			e.mustDo(encodedReq(t, "/patients", "t1", c, c, patient), 201)
			e.noPlaintextReached(patientSecrets...)
			rcv := e.app.Received()[0]
			if ce := rcv.Header.Get("Content-Encoding"); ce != "" {
				t.Errorf("content-encoding %q reached the app with a decoded body", ce)
			}
			if cl := rcv.Header.Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(rcv.Body)) {
				t.Errorf("content-length %s for a body of %d bytes", cl, len(rcv.Body))
			}
			stored, _ := e.app.Record("patients", "1")
			if v, _ := field(t, stored, "ssn").(string); !envelope.IsCiphertext([]byte(v)) {
				t.Fatalf("stored ssn %q is not a ciphertext", v)
			}
			x := e.mustDo(jsonReq("GET", "/patients/1", "t1", ""), 200)
			if got := field(t, x.client.body, "ssn"); got != "123-45-6789" {
				t.Errorf("read back ssn %v", got)
			}
		})
	}
}

// TestCompressedResponse: an app that compresses its response regardless gets it decoded and
// decrypted; the client receives it uncompressed (Envoy's compressor compresses it again).
func TestCompressedResponse(t *testing.T) {
	e := newTestEnv(t, Options{})
	storedPatient(t, e)
	x := e.mustDo(jsonReq("GET", "/patients/1?encoding=gzip", "t1", ""), 200)
	if ce, ok := x.client.headers.get("content-encoding"); ok {
		t.Errorf("content-encoding %q on a decoded response", ce)
	}
	if got := field(t, x.client.body, "ssn"); got != "123-45-6789" {
		t.Errorf("ssn %v, want the plaintext", got)
	}
}

// TestCompressedRefusals: what cannot or may not be decoded is refused, with a JSON error, and
// nothing reaches the app in the request phase.
func TestCompressedRefusals(t *testing.T) {
	bomb := compress(t, "gzip", make([]byte, 64<<20))
	refuse := func(ps []policy.Config) []policy.Config {
		for i := range ps {
			if ps[i].Name == "patients" {
				ps[i].Request.Compressed = "refuse"
			}
		}
		return ps
	}
	for _, tc := range []struct {
		name    string
		req     httpReq
		edit    func([]policy.Config) []policy.Config
		opts    Options
		setup   func(t *testing.T, e *testEnv)
		want    int
		wantMsg string
		atApp   bool
	}{
		{name: "unknown coding", req: encodedReq(t, "/patients", "t1", "compress", "", patient), want: 415, wantMsg: "content-encoding is not supported"},
		{name: "stacked codings", req: encodedReq(t, "/patients", "t1", "gzip, br", "gzip", patient), want: 415, wantMsg: "several codings"},
		{name: "the same coding twice", req: func() httpReq {
			r := encodedReq(t, "/patients", "t1", "gzip", "gzip", patient)
			r.headers = append(r.headers, [2]string{"content-encoding", "gzip"})
			return r
		}(), want: 415, wantMsg: "several codings"},
		{name: "header says gzip, body is plain", req: encodedReq(t, "/patients", "t1", "gzip", "", patient), want: 400, wantMsg: "not valid gzip data"},
		{name: "header says gzip, body is zstd", req: func() httpReq {
			r := encodedReq(t, "/patients", "t1", "gzip", "zstd", patient)
			return r
		}(), want: 400, wantMsg: "not valid gzip data"},
		{name: "truncated gzip", req: func() httpReq {
			r := encodedReq(t, "/patients", "t1", "gzip", "gzip", patient)
			r.body = r.body[:len(r.body)-4]
			return r
		}(), want: 400, wantMsg: "not valid gzip data"},
		{name: "bomb", req: func() httpReq {
			r := encodedReq(t, "/patients", "t1", "gzip", "", patient)
			r.body = bomb
			return r
		}(), want: 413, wantMsg: "request body too large once decompressed"},
		{name: "over the ratio", opts: Options{MaxCompressionRatio: 2}, req: encodedReq(t, "/patients", "t1", "gzip", "gzip", strings.Repeat(" ", 1000)+patient),
			want: 413, wantMsg: "too large once decompressed"},
		{name: "policy refuses compressed requests", edit: refuse, req: encodedReq(t, "/patients", "t1", "gzip", "gzip", patient),
			want: 415, wantMsg: "refused by the policy"},
		{name: "compressed response bomb", setup: func(t *testing.T, e *testEnv) {
			storedPatient(t, e)
		}, req: jsonReq("GET", "/patients/1?encoding=gzip", "t1", ""), opts: Options{MaxCompressionRatio: 1},
			want: 502, wantMsg: "upstream response body too large once decompressed", atApp: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnvWith(t, tc.opts, tc.edit)
			if tc.setup != nil {
				tc.setup(t, e)
			}
			before := len(e.app.Received())
			x := e.do(envoyCfg{bufferLimit: 1 << 20}, tc.req)
			if x.client.status != tc.want {
				t.Fatalf("status %d, want %d (body %s)", x.client.status, tc.want, x.client.body)
			}
			if msg := errorMessage(t, x); !strings.Contains(msg, tc.wantMsg) {
				t.Errorf("error %q, want it to contain %q", msg, tc.wantMsg)
			}
			if reached := len(e.app.Received()) != before; reached != tc.atApp {
				t.Errorf("app reached: %v, want %v", reached, tc.atApp)
			}
			e.noPlaintextReached(patientSecrets...)
			for _, s := range patientSecrets {
				if bytes.Contains(x.client.body, []byte(s)) {
					t.Errorf("error reply leaks %q", s)
				}
			}
		})
	}
}

// TestCompressedBudget: decoding is charged to the memory budget before it starts: the
// largest decoded body and the decoder's window. A budget that holds one largest body refuses
// a br body (whose decoder may hold a 16 MiB window) with 503, and takes a gzip one.
func TestCompressedBudget(t *testing.T) {
	const maxBody = 64 << 10
	opts := Options{MaxBodyBytes: maxBody, MemoryBudget: 2 * BodyCostFactor * maxBody}
	e := newTestEnv(t, opts)
	e.mustDo(encodedReq(t, "/patients", "t1", "gzip", "gzip", patient), 201)
	x := e.mustDo(encodedReq(t, "/patients", "t1", "br", "br", patient), 503)
	if msg := errorMessage(t, x); msg != "rkms is busy, try again" {
		t.Errorf("error %q", msg)
	}
	if used := e.srv.Stats().ReservedBytes; used != 0 {
		t.Errorf("%d bytes still reserved", used)
	}
	if c := decompress.Brotli.StateBytes(); c < 16<<20 {
		t.Errorf("br state %d bytes, below its 16 MiB window", c)
	}
}

// TestCompressedEmptyResponse: a compressed response that decodes to nothing goes on as an
// empty body, content-encoding removed.
func TestCompressedEmptyResponse(t *testing.T) {
	e := newTestEnv(t, Options{})
	empty := compress(t, "gzip", nil)
	p := &processor{s: e.srv, coding: [2]decompress.Coding{decompress.Identity, decompress.Gzip}}
	body, err := p.decode(phaseResponse, empty)
	if err != nil || len(body) != 0 || p.decoded == nil {
		t.Fatalf("decode = %q, %v", body, err)
	}
	r := p.answerBody(phaseResponse, nil)
	cr := r.GetResponseBody().GetResponse()
	if got := cr.GetBodyMutation().GetBody(); got == nil || len(got) != 0 {
		t.Errorf("body mutation %v, want an empty body", cr.GetBodyMutation())
	}
	if rm := cr.GetHeaderMutation().GetRemoveHeaders(); len(rm) != 1 || rm[0] != "content-encoding" {
		t.Errorf("removed headers %v", rm)
	}
	p.dropDecoded()
	e.srv.budget.release(p.reserved[phaseResponse])
}
