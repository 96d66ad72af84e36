package extproc

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/rkms/rkms/examples/app/recorder"
	"github.com/rkms/rkms/internal/testing/envoytest"
)

// The adversarial suite's tools (adversarial_test.go): a raw HTTP/1.1 client that writes exactly
// the bytes an attempt spells, and a search for a sentinel in every form an application could
// read it in.

// advAuth is the Authorization header of the attempts: a valid token for advTenant, which
// ingress.yaml verifies and rkms reads ({jwt:tenant}). The invariants hold for an authenticated
// client: a valid token does not let tagged plaintext past rkms.
var advAuth = sync.OnceValue(func() string {
	tok, err := envoytest.TenantToken(advTenant)
	if err != nil {
		panic(err)
	}
	return "Bearer " + tok
})

const (
	advTenant       = "t-adv"
	advTimeout      = 3 * time.Second // every raw connection: dial, write and read
	advMaxDecoded   = 16 << 20        // bound on what one decoding step may produce
	advMaxViews     = 4096            // bound on the decoded views of one message
	advDecodeRounds = 3               // decodings applied on top of each other (gzip, then JSON, ...)
)

// rawReq is one request written byte for byte on a fresh TCP connection to Envoy's listener.
type rawReq struct {
	method, target string
	proto          string   // "HTTP/1.1" when empty
	header         []string // name, value pairs, written in this order exactly as given
	body           []byte
	chunks         []string // the body in the chunked transfer coding, one Write per chunk
	expect100      bool     // write the head, wait for the interim 100 Continue, then the body
	bare           bool     // add no default header (Host, Authorization, Content-Length)
	pipeline       []rawReq // further requests written in the same Write, answered in order
	h2             bool     // send with net/http over HTTP/2 with prior knowledge (h2c) instead
}

func (r rawReq) has(name string) bool {
	for i := 0; i+1 < len(r.header); i += 2 {
		if strings.EqualFold(r.header[i], name) {
			return true
		}
	}
	return false
}

// head returns the request line and headers, with the defaults an ordinary client sends unless
// the attempt spells them itself: Host, a valid bearer token for advTenant (advAuth), and
// Content-Length or chunked framing.
func (r rawReq) head() []byte {
	proto := r.proto
	if proto == "" {
		proto = "HTTP/1.1"
	}
	hdr := slices.Clone(r.header)
	if !r.bare {
		if !r.has("host") {
			hdr = append([]string{"Host", "127.0.0.1"}, hdr...)
		}
		if !r.has("authorization") {
			hdr = append(hdr, "Authorization", advAuth())
		}
		switch {
		case r.chunks != nil && !r.has("transfer-encoding"):
			hdr = append(hdr, "Transfer-Encoding", "chunked")
		case r.chunks == nil && r.body != nil && !r.has("content-length") && !r.has("transfer-encoding"):
			hdr = append(hdr, "Content-Length", strconv.Itoa(len(r.body)))
		}
	}
	b := fmt.Appendf(nil, "%s %s %s\r\n", r.method, r.target, proto)
	for i := 0; i+1 < len(hdr); i += 2 {
		b = fmt.Appendf(b, "%s: %s\r\n", hdr[i], hdr[i+1])
	}
	return append(b, "\r\n"...)
}

// clientReply is everything the client got back for one attempt (several responses when the
// attempt pipelines requests or reads a record back).
type clientReply struct {
	statuses []int
	header   http.Header // of the last response
	headers  []http.Header
	bodies   [][]byte
	err      error // the connection failed before every response was read
}

func (c *clientReply) add(resp *http.Response, body []byte) {
	c.statuses = append(c.statuses, resp.StatusCode)
	c.header = resp.Header
	c.headers = append(c.headers, resp.Header)
	c.bodies = append(c.bodies, body)
}

// status is the first response's status (0 if none came).
func (c *clientReply) status() int {
	if len(c.statuses) == 0 {
		return 0
	}
	return c.statuses[0]
}

func (c *clientReply) statusText() string {
	if len(c.statuses) == 0 {
		return "-"
	}
	s := make([]string, len(c.statuses))
	for i, st := range c.statuses {
		s[i] = strconv.Itoa(st)
	}
	return strings.Join(s, ",")
}

// sendHTTP1 writes r on a new connection to addr and reads the final response to it and to each
// pipelined request. Every step shares one deadline.
func sendHTTP1(addr string, r rawReq) clientReply {
	var out clientReply
	conn, err := net.DialTimeout("tcp", addr, advTimeout)
	if err != nil {
		out.err = err
		return out
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(advTimeout))
	br := bufio.NewReader(conn)
	msg := r.head()
	if r.chunks == nil && !r.expect100 {
		msg = append(msg, r.body...)
	}
	for _, p := range r.pipeline {
		msg = append(append(msg, p.head()...), p.body...)
	}
	// Write errors are not final: Envoy may answer and close before reading everything, and its
	// answer is still worth reading.
	_, _ = conn.Write(msg)
	if r.expect100 {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			out.err = fmt.Errorf("waiting for 100 Continue: %w", err)
			return out
		}
		if resp.StatusCode != http.StatusContinue {
			body, err := io.ReadAll(resp.Body)
			out.add(resp, body)
			out.err = err
			return out
		}
		_, _ = conn.Write(r.body)
	}
	for _, c := range r.chunks {
		_, _ = conn.Write(fmt.Appendf(nil, "%x\r\n%s\r\n", len(c), c))
	}
	if r.chunks != nil {
		_, _ = conn.Write([]byte("0\r\n\r\n"))
	}
	for range 1 + len(r.pipeline) {
		resp, err := readFinal(br)
		if err != nil {
			out.err = err
			return out
		}
		var body []byte
		if resp.StatusCode != http.StatusSwitchingProtocols {
			body, err = io.ReadAll(resp.Body)
		}
		out.add(resp, body)
		if err != nil {
			out.err = err
			return out
		}
	}
	return out
}

// readFinal reads responses until one is not an interim 1xx (101 is final: the protocol changed).
func readFinal(br *bufio.Reader) (*http.Response, error) {
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, nil
		}
	}
}

// sendH2 sends r with client, which speaks HTTP/2 with prior knowledge; net/http sets the
// framing headers itself.
func sendH2(client *http.Client, base string, r rawReq) clientReply {
	var out clientReply
	req, err := http.NewRequest(r.method, base+r.target, bytes.NewReader(r.body))
	if err != nil {
		out.err = err
		return out
	}
	for i := 0; i+1 < len(r.header); i += 2 {
		req.Header.Add(r.header[i], r.header[i+1])
	}
	if !r.has("authorization") {
		req.Header.Set("Authorization", advAuth())
	}
	resp, err := client.Do(req)
	if err != nil {
		out.err = err
		return out
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	out.add(resp, body)
	out.err = err
	if resp.ProtoMajor != 2 {
		out.err = fmt.Errorf("answered over %s, want HTTP/2", resp.Proto)
	}
	return out
}

// exposure is one form in which a message's bytes can be read: "body/gzip/json" is the strings
// of the JSON inside the gzip inside the body.
type advExposure struct {
	where string
	data  []byte
}

// views collects exposures, each distinct content once.
type advViews struct {
	list []advExposure
	seen map[string]bool
}

// receivedViews returns every form of what the app received in which a sentinel could be
// read: method, raw and re-escaped target, host, header and trailer values, and the body, each
// also decoded (percent-decoding, gzip and zlib, UTF-16, a UTF-8 BOM, JSON strings and member
// names with their escapes) up to decodeRounds deep.
func receivedViews(rc recorder.Received) []advExposure {
	v := &advViews{seen: map[string]bool{}}
	v.expand("method", []byte(rc.Method), advDecodeRounds)
	v.expand("target", []byte(rc.RawURI), advDecodeRounds)
	v.expand("path", []byte(rc.Path), advDecodeRounds)
	v.expand("host", []byte(rc.Host), advDecodeRounds)
	v.headers("header", rc.Header)
	v.headers("trailer", rc.Trailer)
	v.expand("body", rc.Body, advDecodeRounds)
	return v.list
}

// replyViews returns every form of what the client got back.
func replyViews(c clientReply) []advExposure {
	v := &advViews{seen: map[string]bool{}}
	for i := range c.bodies {
		v.headers("reply header", c.headers[i])
		v.expand("reply body", c.bodies[i], advDecodeRounds)
	}
	return v.list
}

func (v *advViews) headers(where string, h http.Header) {
	for name, advVals := range h {
		for _, val := range advVals {
			v.expand(where+" "+strings.ToLower(name), []byte(val), advDecodeRounds)
		}
	}
}

func (v *advViews) expand(where string, data []byte, rounds int) {
	if len(data) == 0 || len(v.list) >= advMaxViews || v.seen[string(data)] {
		return
	}
	v.seen[string(data)] = true
	v.list = append(v.list, advExposure{where, data})
	if rounds == 0 {
		return
	}
	for _, decode := range advDecoders {
		for _, out := range decode(data) {
			v.expand(where+"/"+out.where, out.data, rounds-1)
		}
	}
}

// find returns where in list secret occurs, or "".
func advFind(list []advExposure, secret string) string {
	for _, e := range list {
		if bytes.Contains(e.data, []byte(secret)) {
			return e.where
		}
	}
	return ""
}

// decoders are the readings of a byte string an application might apply, each naming its
// outputs. They return nothing when they do not apply.
var advDecoders = []func([]byte) []advExposure{
	func(b []byte) []advExposure {
		if !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
			return nil
		}
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil
		}
		return advReadSome("gzip", zr)
	},
	func(b []byte) []advExposure {
		if len(b) < 2 || b[0]&0x0f != 8 || (uint16(b[0])<<8|uint16(b[1]))%31 != 0 {
			return nil
		}
		zr, err := zlib.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil
		}
		return advReadSome("zlib", zr)
	},
	func(b []byte) []advExposure {
		if t, ok := bytes.CutPrefix(b, []byte{0xef, 0xbb, 0xbf}); ok {
			return []advExposure{{"bom", t}}
		}
		return nil
	},
	advDecodeUTF16,
	func(b []byte) []advExposure {
		if bytes.IndexByte(b, '%') < 0 && bytes.IndexByte(b, '+') < 0 {
			return nil
		}
		return []advExposure{{"percent", advPercentDecode(b)}}
	},
	advJSONStrings,
}

func advReadSome(name string, r io.Reader) []advExposure {
	out, _ := io.ReadAll(io.LimitReader(r, advMaxDecoded)) // a truncated stream still shows its start
	if len(out) == 0 {
		return nil
	}
	return []advExposure{{name, out}}
}

// decodeUTF16 reads b as UTF-16 in both byte orders when it looks like UTF-16 (a BOM, or a zero
// in at least a quarter of its bytes).
func advDecodeUTF16(b []byte) []advExposure {
	if len(b) < 4 || len(b)%2 != 0 {
		return nil
	}
	bom := (b[0] == 0xff && b[1] == 0xfe) || (b[0] == 0xfe && b[1] == 0xff)
	if !bom && bytes.Count(b, []byte{0})*4 < len(b) {
		return nil
	}
	var out []advExposure
	for _, le := range []bool{true, false} {
		u := make([]uint16, len(b)/2)
		for i := range u {
			if le {
				u[i] = uint16(b[2*i]) | uint16(b[2*i+1])<<8
			} else {
				u[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
			}
		}
		name := "utf16be"
		if le {
			name = "utf16le"
		}
		out = append(out, advExposure{name, []byte(string(utf16.Decode(u)))})
	}
	return out
}

// percentDecode decodes every valid %XX and '+' (as a form would); invalid escapes stay as they are.
func advPercentDecode(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		switch {
		case b[i] == '%' && i+2 < len(b) && advIsHex(b[i+1]) && advIsHex(b[i+2]):
			v, _ := strconv.ParseUint(string(b[i+1:i+3]), 16, 8)
			out = append(out, byte(v))
			i += 2
		case b[i] == '+':
			out = append(out, ' ')
		default:
			out = append(out, b[i])
		}
	}
	return out
}

func advIsHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// jsonStrings returns every member name, string and number of the JSON texts in b (several
// concatenated documents too, and as far as b is valid), escapes decoded, one per line; and,
// each on its own, the strings that may hold an encoded document or form, to be decoded in turn.
func advJSONStrings(b []byte) []advExposure {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var all []byte
	var out []advExposure
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		var s string
		switch x := tok.(type) {
		case string:
			s = x
		case json.Number:
			s = x.String()
		default:
			continue
		}
		all = append(append(all, s...), '\n')
		if len(s) > 0 && (s[0] == '{' || s[0] == '[' || strings.ContainsAny(s, "%+")) {
			out = append(out, advExposure{"json-string", []byte(s)})
		}
	}
	if len(all) == 0 {
		return nil
	}
	return append([]advExposure{{"json", all}}, out...)
}

// TestAdversarialViews checks the sentinel search itself on forms the integration run may never
// meet today (rkms refuses them before the app): whatever an app could decode, the search decodes.
func TestAdversarialViews(t *testing.T) {
	const secret = "S3NT-x001-0badc0de"
	escaped := `\u0053\u0033NT-x001-0badc0de`
	found := []struct {
		name string
		rc   recorder.Received
		want string
	}{
		{"raw body", recorder.Received{Body: []byte(`{"ssn ":"` + secret + `"}`)}, "body"},
		{"gzip", recorder.Received{Body: advCompress("gzip", `{"ssn":"`+secret+`"}`)}, "body/gzip"},
		{"zlib", recorder.Received{Body: advCompress("deflate", `{"ssn":"`+secret+`"}`)}, "body/zlib"},
		{"utf-16le", recorder.Received{Body: advUTF16("\ufeff"+`{"ssn":"`+secret+`"}`, false)}, "body/utf16le"},
		{"utf-16be", recorder.Received{Body: advUTF16(`{"ssn":"`+secret+`"}`, true)}, "body/utf16be"},
		{"json escapes", recorder.Received{Body: []byte(`{"ssn":"` + escaped + `"}`)}, "body/json"},
		{"member name", recorder.Received{Body: []byte(`{"` + escaped + `":1}`)}, "body/json"},
		{"json in a json string", recorder.Received{Body: []byte(`{"a":"{\"b\":\"` + `\\u0053\\u0033NT-x001-0badc0de` + `\"}"}`)}, "body/json-string/json"},
		{"bom then json", recorder.Received{Body: []byte("\ufeff" + `{"ssn":"` + escaped + `"}`)}, "body/bom/json"},
		{"gzip of escaped json", recorder.Received{Body: advCompress("gzip", `{"ssn":"`+escaped+`"}`)}, "body/gzip/json"},
		{"form", recorder.Received{Body: []byte("ssn=S3NT-x001-0badc0%64e")}, "body/percent"},
		{"target", recorder.Received{RawURI: "/p?q=S3NT%2Dx001-0badc0de"}, "target/percent"},
		{"host", recorder.Received{Host: secret + ".example"}, "host"},
		{"header", recorder.Received{Header: http.Header{"X-A": {"S3NT-x001-0badc0%64e"}}}, "header x-a/percent"},
		{"trailer", recorder.Received{Trailer: http.Header{"X-A": {secret}}}, "trailer x-a"},
	}
	for _, tc := range found {
		if got := advFind(receivedViews(tc.rc), secret); got != tc.want {
			t.Errorf("%s: found at %q, want %q", tc.name, got, tc.want)
		}
	}
	ct := recorder.Received{Method: "POST", RawURI: "/patients", Body: []byte(`{"ssn":"rkms:AQEKdGVuYW50LXQx"}`)}
	if got := advFind(receivedViews(ct), secret); got != "" {
		t.Errorf("ciphertext only: found at %q", got)
	}
	if got := advFind(replyViews(clientReply{headers: []http.Header{{}}, bodies: [][]byte{[]byte(`{"items":[{"ssn":"` + escaped + `"}]}`)}}), secret); got != "reply body/json" {
		t.Errorf("reply: found at %q", got)
	}
}
