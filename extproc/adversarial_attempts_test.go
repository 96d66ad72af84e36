package extproc

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"fmt"
	"slices"
	"strings"
	"unicode/utf16"
)

// adversarialAttempts is the attack list of TestAdversarial, family by family. Unless an
// attempt says otherwise it is a POST of JSON to a path the patients policy of
// testdata/policies.yaml covers (tagged names ssn, email and number; its responses open them,
// also under items[]), with Host, Authorization and Content-Length added by rawReq.head.
func adversarialAttempts() []advAttempt {
	var l advAttemptList
	for _, family := range []func(){l.controls, l.paths, l.methods, l.bodies, l.names, l.charsets,
		l.encodings, l.headers, l.oracles} {
		family()
	}
	return l.list
}

type advAttemptList struct{ list []advAttempt }

func (l *advAttemptList) add(family, name string, build func(v advVals) rawReq, opts ...func(*advAttempt)) {
	a := advAttempt{family: family, name: name, build: build}
	for _, o := range opts {
		o(&a)
	}
	l.list = append(l.list, a)
}

// advControl makes an attempt a control whose fields must hold ciphertext at the app.
func advControl(fields ...string) func(*advAttempt) {
	return func(a *advAttempt) { a.control, a.fields = true, fields }
}

func advOracle(a *advAttempt)   { a.oracle = true }
func advReadBack(a *advAttempt) { a.readBack = true }

// Controls: ordinary requests must still work, with ciphertext at the app.
func (l *advAttemptList) controls() {
	l.add("control", "POST /patients, a full record, read back", func(v advVals) rawReq {
		return advPost("/patients", advPatient(v.S))
	}, advControl("ssn", "contact.email", "cards.0.number", "cards.1.number"), advReadBack)
	l.add("control", "PUT /patients/{id}", func(v advVals) rawReq {
		return advBody("PUT", "/patients/ctl", "application/json", advSSN(v.S))
	}, advControl("ssn"))
	l.add("control", "POST, application/json; charset=utf-8", func(v advVals) rawReq {
		return advBody("POST", "/patients", "application/json; charset=utf-8", advSSN(v.S))
	}, advControl("ssn"))
	l.add("control", "POST over HTTP/2 (h2c prior knowledge)", func(v advVals) rawReq {
		r := advPost("/patients", advSSN(v.S))
		r.h2 = true
		return r
	}, advControl("ssn"))
}

// Path spellings: a path the app routes to /patients (or might: Express and ASP.NET match
// case-insensitively, some frameworks fold Unicode or decode %2F) but a prefix match misses.
func (l *advAttemptList) paths() {
	for _, p := range []string{
		"/PATIENTS", "/Patients", "/patients/", "//patients", "/./patients", "/x/../patients",
		"/x/%2e%2e/patients", "/%2e/patients", "/%70atients", "/pat%69ents", "/%2Fpatients",
		"/patients%2F1", "/patients;x=1", "/patients?x=1", `/\patients`, "/%5Cpatients",
		"/patients%00", "/patient%C5%BF", "/pat%C4%B1ents", "/patients#frag",
	} {
		l.add("path", "POST "+p, func(v advVals) rawReq { return advPost(p, advSSN(v.S)) })
	}
	l.add("path", "absolute-form POST http://127.0.0.1/patients", func(v advVals) rawReq {
		return advPost("http://127.0.0.1/patients", advSSN(v.S))
	})
	l.add("path", "absolute-form, Host disagrees", func(v advVals) rawReq {
		return advPost("http://app.internal/patients", advSSN(v.S), "Host", "127.0.0.1")
	})
	l.add("path", "two Host headers", func(v advVals) rawReq {
		return advPost("/patients", advSSN(v.S), "Host", "127.0.0.1", "Host", "app.internal")
	})
}

// Methods: the policy lists POST, PUT, PATCH, GET; apps also honour method overrides.
func (l *advAttemptList) methods() {
	for _, m := range []struct{ method, target string }{
		{"post", "/patients"}, {"PUT", "/patients/adv"}, {"PATCH", "/patients/adv"},
		{"DELETE", "/patients/adv"}, {"GET", "/patients"}, {"OPTIONS", "/patients"},
		{"PROPFIND", "/patients"}, {"TRACE", "/patients"},
	} {
		l.add("method", m.method+" "+m.target+" with a body", func(v advVals) rawReq {
			return advBody(m.method, m.target, "application/json", advSSN(v.S))
		})
	}
	for _, o := range []struct{ method, target, header, value string }{
		{"POST", "/patients", "X-HTTP-Method-Override", "PUT"},
		{"PROPFIND", "/patients", "X-HTTP-Method-Override", "POST"},
		{"SEARCH", "/patients", "X-HTTP-Method", "POST"},
		{"LOCK", "/patients/adv", "X-Method-Override", "PUT"},
	} {
		l.add("method", fmt.Sprintf("%s %s, %s: %s", o.method, o.target, o.header, o.value), func(v advVals) rawReq {
			r := advBody(o.method, o.target, "application/json", advSSN(v.S))
			r.header = append(r.header, o.header, o.value)
			return r
		})
	}
	l.add("method", "DELETE /patients?_method=POST with a body", func(v advVals) rawReq {
		return advBody("DELETE", "/patients?_method=POST", "application/json", advSSN(v.S))
	})
}

// Body shapes: tagged names where the policy's selectors do not look.
func (l *advAttemptList) bodies() {
	for _, b := range []struct{ name, doc string }{
		{"contact as an array", `{"contact":[{"email":"$S"}]}`},
		{"cards nested in an array", `{"cards":[[{"number":"$S"}]]}`},
		{"cards as an object", `{"cards":{"visa":{"number":"$S"}}}`},
		{"top-level array", `[{"ssn":"$S"}]`},
		{"items list", `{"items":[{"ssn":"$S"}]}`},
		{"items list, value in \\u escapes", `{"items":[{"ssn":"$E"}]}`},
		{"nested object", `{"a":{"b":{"ssn":"$S"}}}`},
		{"duplicate keys", `{"ssn":"ok","ssn":"$S"}`},
		{"ssn as a number", `{"ssn":$N}`},
		{"ssn as an object", `{"ssn":{"value":"$S"}}`},
		{"ssn as an array", `{"ssn":["$S"]}`},
		{"nesting 900 deep", strings.Repeat(`{"a":`, 900) + `{"ssn":"$S"}` + strings.Repeat("}", 900)},
		{"two concatenated documents", `{"name":"x"}{"ssn":"$S"}`},
	} {
		l.add("body", b.name, func(v advVals) rawReq { return advPost("/patients", advFill(b.doc, v)) })
	}
}

// Member-name spellings that an application may bind to a tagged name.
func (l *advAttemptList) names() {
	for _, n := range []struct{ name, doc string }{
		{`"SSN"`, `{"SSN":"$S"}`},
		{`"Ssn"`, `{"Ssn":"$S"}`},
		{`"s\u0073n"`, `{"s\u0073n":"$S"}`},
		{`"\u0053SN"`, `{"\u0053SN":"$S"}`},
		{`"ſsn" (U+017F long s, upper-cases to S)`, `{"ſsn":"$S"}`},
		{`"\u017fsn"`, `{"\u017fsn":"$S"}`},
		{`"ssn " (trailing space)`, `{"ssn ":"$S"}`},
		{`"emaıl" (U+0131 dotless i, upper-cases to I)`, `{"contact":{"emaıl":"$S"}}`},
		{`"CONTACT"."EMAIL"`, `{"CONTACT":{"EMAIL":"$S"}}`},
		{`"cards"[]."NUMBER"`, `{"cards":[{"NUMBER":"$S"}]}`},
	} {
		l.add("name", n.name, func(v advVals) rawReq { return advPost("/patients", advFill(n.doc, v)) })
	}
}

// Charsets and content types.
func (l *advAttemptList) charsets() {
	for _, c := range []struct{ name, ctype, doc string }{
		{"charset=utf-7, member +AHM-sn", "application/json; charset=utf-7", `{"+AHM-sn":"$S"}`},
		{"charset=iso-8859-1", "application/json; charset=iso-8859-1", `{"ssn":"$S"}`},
		{"text/plain with a JSON body", "text/plain", `{"ssn":"$S"}`},
		{"text/json", "text/json", `{"ssn":"$S"}`},
		{"application/x-www-form-urlencoded", "application/x-www-form-urlencoded", "ssn=$S"},
		{"multipart/form-data", "multipart/form-data; boundary=XyZ",
			"--XyZ\r\nContent-Disposition: form-data; name=\"ssn\"\r\n\r\n$S\r\n--XyZ--\r\n"},
		{"no content-type", "", `{"ssn":"$S"}`},
		{"application/vnd.api+json", "application/vnd.api+json", `{"ssn":"$S"}`},
		{"UTF-8 BOM before the JSON", "application/json", "\ufeff" + `{"ssn":"$S"}`},
	} {
		l.add("charset", c.name, func(v advVals) rawReq { return advBody("POST", "/patients", c.ctype, advFill(c.doc, v)) })
	}
	l.add("charset", "charset=utf-16, little-endian with a BOM", func(v advVals) rawReq {
		r := advBody("POST", "/patients", "application/json; charset=utf-16", "")
		r.body = advUTF16("\ufeff"+advSSN(v.S), false)
		return r
	})
	l.add("charset", "charset=utf-16be, no BOM", func(v advVals) rawReq {
		r := advBody("POST", "/patients", "application/json; charset=utf-16be", "")
		r.body = advUTF16(advSSN(v.S), true)
		return r
	})
	l.add("charset", "two content-type headers: json, text/plain", func(v advVals) rawReq {
		return advPost("/patients", advSSN(v.S), "Content-Type", "text/plain")
	})
	l.add("charset", "two content-type headers: text/plain, json", func(v advVals) rawReq {
		r := advBody("POST", "/patients", "text/plain", advSSN(v.S))
		r.header = append(r.header, "Content-Type", "application/json")
		return r
	})
}

// Transfer and content encodings.
func (l *advAttemptList) encodings() {
	l.add("encoding", "chunked, sentinel split across chunks", func(v advVals) rawReq {
		return rawReq{method: "POST", target: "/patients", header: slices.Clone(advJSONType),
			chunks: []string{`{"ssn":"` + v.S[:7], v.S[7:12], v.S[12:] + `"}`}}
	})
	for _, e := range []struct{ name, header string }{
		{"gzip", "gzip"}, {"deflate", "deflate"}, {"gzip, identity", "gzip, identity"},
	} {
		l.add("encoding", "content-encoding: "+e.name, func(v advVals) rawReq {
			r := advPost("/patients", "", "Content-Encoding", e.header)
			r.body = advCompress(e.header, advSSN(v.S))
			return r
		})
	}
	l.add("encoding", "content-encoding: identity", func(v advVals) rawReq {
		return advPost("/patients", advSSN(v.S), "Content-Encoding", "identity")
	})
	l.add("encoding", "content-length and chunked together", func(v advVals) rawReq {
		body := advSSN(v.S)
		return rawReq{method: "POST", target: "/patients", chunks: []string{body},
			header: append(slices.Clone(advJSONType), "Content-Length", fmt.Sprint(len(body)))}
	})
	l.add("encoding", "transfer-encoding: gzip, chunked", func(v advVals) rawReq {
		return rawReq{method: "POST", target: "/patients", chunks: []string{string(advCompress("gzip", advSSN(v.S)))},
			header: append(slices.Clone(advJSONType), "Transfer-Encoding", "gzip, chunked")}
	})
}

// Header tricks.
func (l *advAttemptList) headers() {
	l.add("header", "x-rkms-policy: none sent by the client", func(v advVals) rawReq {
		return advPost("/patients", advSSN(v.S), "x-rkms-policy", "none")
	})
	l.add("header", "x-rkms-policy: orders sent by the client", func(v advVals) rawReq {
		return advPost("/patients", `{"org":"o1","ssn":"`+v.S+`"}`, "x-rkms-policy", "orders")
	})
	l.add("header", "Expect: 100-continue", func(v advVals) rawReq {
		r := advPost("/patients", advSSN(v.S), "Expect", "100-continue")
		r.expect100 = true
		return r
	})
	l.add("header", "Connection: upgrade, Upgrade: websocket, with a body", func(v advVals) rawReq {
		return advPost("/patients", advSSN(v.S), "Connection", "Upgrade", "Upgrade", "websocket")
	})
	l.add("header", "h2c upgrade with a body", func(v advVals) rawReq {
		return advPost("/patients", advSSN(v.S), "Connection", "Upgrade, HTTP2-Settings", "Upgrade", "h2c",
			"HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")
	})
	l.add("header", "HTTP/1.0 without Host", func(v advVals) rawReq {
		body := advSSN(v.S)
		return rawReq{method: "POST", target: "/patients", proto: "HTTP/1.0", bare: true, body: []byte(body),
			header: []string{"Content-Type", "application/json", "Authorization", advAuth(), "Content-Length", fmt.Sprint(len(body))}}
	})
	l.add("header", "pipelined behind a request without policy", func(v advVals) rawReq {
		r := advPost("/notes", `{"n":1}`)
		r.pipeline = []rawReq{advPost("/patients", advSSN(v.S))}
		return r
	})
	l.add("header", "HTTP/2 (h2c) POST /PATIENTS", func(v advVals) rawReq {
		r := advPost("/PATIENTS", advSSN(v.S))
		r.h2 = true
		return r
	})
}

// The oracle: send the ciphertext of a sentinel (sealed by a legitimate request) where a
// response would open it.
func (l *advAttemptList) oracles() {
	escColon := func(ct string) string { return strings.Replace(ct, "rkms:", `rkms\u003a`, 1) }
	for _, o := range []struct{ name, target, doc string }{
		{"items[].ssn echoed back", "/patients", `{"items":[{"ssn":"$C"}]}`},
		{"ssn (already encrypted)", "/patients", `{"ssn":"$C"}`},
		{`ssn as "rkms\u003a..."`, "/patients", `{"ssn":"$c"}`},
		{`items[].ssn as "rkms\u003a..."`, "/patients", `{"items":[{"ssn":"$c"}]}`},
		{"items[].ssn with surrounding spaces", "/patients", `{"items":[{"ssn":" $C "}]}`},
		{"ssn with a leading space", "/patients", `{"ssn":" $C"}`},
		{"nested under an untagged member", "/patients", `{"note":{"ssn":"$C"}}`},
		{"ITEMS[].SSN", "/patients", `{"ITEMS":[{"SSN":"$C"}]}`},
		{"under contact.email (another label)", "/patients", `{"contact":{"email":"$C"}}`},
	} {
		l.add("oracle", o.name, func(v advVals) rawReq {
			return advPost(o.target, strings.NewReplacer("$C", v.CT, "$c", escColon(v.CT)).Replace(o.doc))
		}, advOracle)
	}
	l.add("oracle", "PUT /patients/{id} items[].ssn", func(v advVals) rawReq {
		return advBody("PUT", "/patients/oracle", "application/json", `{"items":[{"ssn":"`+v.CT+`"}]}`)
	}, advOracle)
	l.add("oracle", "in the query of a GET", func(v advVals) rawReq {
		return rawReq{method: "GET", target: "/patients/0?q=" + v.CT}
	}, advOracle)
	l.add("oracle", "in a request header of a GET", func(v advVals) rawReq {
		return rawReq{method: "GET", target: "/patients/0", header: []string{"x-ssn", v.CT}}
	}, advOracle)
	l.add("oracle", "as the id in the path of a GET", func(v advVals) rawReq {
		return rawReq{method: "GET", target: "/patients/" + v.CT}
	}, advOracle)
	for _, p := range []string{"/%70atients", "//patients"} {
		l.add("oracle", "stored as ssn via POST "+p+", read back", func(v advVals) rawReq {
			return advPost(p, `{"ssn":"`+v.CT+`"}`)
		}, advOracle, advReadBack)
	}
}

var advJSONType = []string{"Content-Type", "application/json"}

// post is a POST of a JSON body, with extra header pairs.
func advPost(target, body string, header ...string) rawReq {
	return rawReq{method: "POST", target: target, header: append(slices.Clone(advJSONType), header...), body: []byte(body)}
}

// withBody is method target with a body of content type ctype (none if empty).
func advBody(method, target, ctype, body string) rawReq {
	r := rawReq{method: method, target: target, body: []byte(body)}
	if ctype != "" {
		r.header = []string{"Content-Type", ctype}
	}
	return r
}

func advSSN(s string) string { return `{"ssn":"` + s + `"}` }

// fill replaces $S by the sentinel, $E by the sentinel in \u escapes, $N by the numeric one.
func advFill(doc string, v advVals) string {
	var esc strings.Builder
	for _, c := range v.S {
		fmt.Fprintf(&esc, `\u%04x`, c)
	}
	return strings.NewReplacer("$S", v.S, "$E", esc.String(), "$N", v.N).Replace(doc)
}

func advPatient(s string) string {
	return `{"name":"Ada","ssn":"` + s + `","contact":{"email":"` + s + `@example.com","phone":"555"},` +
		`"cards":[{"number":"4111-` + s + `","exp":"12/30"},{"number":"5500-` + s + `","exp":"01/29"}]}`
}

func advUTF16(s string, bigEndian bool) []byte {
	var b []byte
	for _, u := range utf16.Encode([]rune(s)) {
		if bigEndian {
			b = append(b, byte(u>>8), byte(u))
		} else {
			b = append(b, byte(u), byte(u>>8))
		}
	}
	return b
}

// compress encodes s with the first coding of a content-encoding value (gzip or deflate, which
// in HTTP is zlib).
func advCompress(coding, s string) []byte {
	var b bytes.Buffer
	if strings.HasPrefix(coding, "deflate") {
		zw := zlib.NewWriter(&b)
		_, _ = zw.Write([]byte(s))
		_ = zw.Close()
		return b.Bytes()
	}
	zw := gzip.NewWriter(&b)
	_, _ = zw.Write([]byte(s))
	_ = zw.Close()
	return b.Bytes()
}
