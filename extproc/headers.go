package extproc

import (
	"errors"
	"iter"
	"mime"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// headerMap holds the headers of one message in message order: lowercase names (Envoy sends
// them lowercase, pseudo-headers included) and their values. It is a slice searched linearly,
// not a map: a message carries about ten headers and rkms reads four of them, so a scan is as
// fast as a hash lookup and saves the map's allocations on every message.
type headerMap []header

type header struct{ name, value string }

// parseHeaders reads an Envoy header map. Envoy 1.27+ sends values only in raw_value; the
// deprecated value field is read when raw_value is empty, for older data planes.
//
// It allocates little, as it runs on every message with headers: the raw values are copied into
// one string that every value is a substring of, and the headers go into one slice.
func parseHeaders(hm *corev3.HeaderMap) headerMap { return parseHeadersInto(nil, hm) }

// parseHeadersInto is parseHeaders reusing dst's array when it is large enough.
func parseHeadersInto(dst headerMap, hm *corev3.HeaderMap) headerMap {
	hs := hm.GetHeaders()
	n := 0
	for _, hv := range hs {
		n += len(hv.GetRawValue())
	}
	var b strings.Builder
	b.Grow(n)
	for _, hv := range hs {
		b.Write(hv.GetRawValue())
	}
	raw := b.String()
	h := dst[:0]
	if cap(h) < len(hs) {
		h = make(headerMap, 0, len(hs))
	}
	h = h[:len(hs)]
	off := 0
	for i, hv := range hs {
		v := hv.GetValue()
		if r := hv.GetRawValue(); len(r) > 0 {
			v = raw[off : off+len(r)]
			off += len(r)
		}
		h[i] = header{name: strings.ToLower(hv.GetKey()), value: v}
	}
	return h
}

// Values returns the values of name in order (an iterator: it allocates nothing).
func (h headerMap) Values(name string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for _, hd := range h {
			if hd.name == name && !yield(hd.value) {
				return
			}
		}
	}
}

// Len and At make headerMap a policy.Headers.
func (h headerMap) Len() int { return len(h) }

// At returns the i-th header.
func (h headerMap) At(i int) (name, value string) { return h[i].name, h[i].value }

// first returns the first value of a header, or "".
func (h headerMap) first(name string) string {
	for v := range h.Values(name) {
		return v
	}
	return ""
}

// isJSON reports whether every content-type value names JSON (application/json or */*+json).
func (h headerMap) isJSON() bool {
	ok, _ := h.jsonMedia()
	return ok
}

// jsonMedia reports whether every content-type value names JSON (application/json or
// application/*+json), and whether each that declares a charset declares UTF-8.
func (h headerMap) jsonMedia() (isJSON, utf8 bool) {
	seen, utf8 := false, true
	for v := range h.Values("content-type") {
		seen = true
		if strings.EqualFold(v, "application/json") {
			continue // the common case, without ParseMediaType's allocations
		}
		mt, params, err := mime.ParseMediaType(v)
		if err != nil {
			return false, false
		}
		if mt != "application/json" && !(strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
			return false, false
		}
		if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
			utf8 = false
		}
	}
	return seen, utf8
}

// checkJSON reports, as an error message to put after "request " or "upstream response ",
// why a body with these headers cannot be read as the application would read it: not JSON,
// or (when strictCharset) a declared charset other than UTF-8, which a framework that honours
// it would decode into other member names than rkms sees. Content codings are checkCoding's.
func (h headerMap) checkJSON(strictCharset bool) error {
	isJSON, utf8 := h.jsonMedia()
	switch {
	case !isJSON:
		return errors.New("content-type must be application/json")
	case strictCharset && !utf8:
		return errors.New("charset must be utf-8")
	}
	return nil
}

// setHeader is a header mutation that overwrites name with value, in raw_value only (Envoy
// ignores value and rejects both being set), with the deprecated append=false that Envoy honours.
func setHeader(name, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header: &corev3.HeaderValue{Key: name, RawValue: []byte(value)},
		Append: wrapperspb.Bool(false),
	}
}
