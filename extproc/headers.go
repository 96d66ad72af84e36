package extproc

import (
	"errors"
	"mime"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// headerMap holds the headers of one message: lowercase names (Envoy sends them lowercase,
// pseudo-headers included) to every value in order.
type headerMap map[string][]string

// parseHeaders reads an Envoy header map. Envoy 1.27+ sends values only in raw_value; the
// deprecated value field is read when raw_value is empty, for older data planes.
//
// It allocates little, as it runs on every message with headers: the raw values are copied into
// one string that every value is a substring of, and single-valued headers share one backing
// array for their value slices.
func parseHeaders(hm *corev3.HeaderMap) headerMap {
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
	h := make(headerMap, len(hs))
	vals := make([]string, len(hs))
	off := 0
	for i, hv := range hs {
		v := hv.GetValue()
		if r := hv.GetRawValue(); len(r) > 0 {
			v = raw[off : off+len(r)]
			off += len(r)
		}
		k := strings.ToLower(hv.GetKey())
		vals[i] = v
		if prev, ok := h[k]; ok {
			h[k] = append(prev, v) // a copy: vals[i:i+1:i+1] below leaves no room to share
		} else {
			h[k] = vals[i : i+1 : i+1]
		}
	}
	return h
}

var (
	errHeaderMissing  = errors.New("missing")
	errHeaderMultiple = errors.New("has several different values")
)

// single returns the value of a header that must occur with one value (repeats of the same
// value are tolerated).
func (h headerMap) single(name string) (string, error) {
	vs := h[name]
	if len(vs) == 0 || vs[0] == "" {
		return "", errHeaderMissing
	}
	for _, v := range vs[1:] {
		if v != vs[0] {
			return "", errHeaderMultiple
		}
	}
	return vs[0], nil
}

// first returns the first value of a header, or "".
func (h headerMap) first(name string) string {
	if vs := h[name]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// isJSON reports whether every content-type value names JSON (application/json or */*+json).
func (h headerMap) isJSON() bool {
	vs := h["content-type"]
	if len(vs) == 0 {
		return false
	}
	for _, v := range vs {
		mt, _, err := mime.ParseMediaType(v)
		if err != nil {
			return false
		}
		if mt != "application/json" && !(strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
			return false
		}
	}
	return true
}

// isIdentity reports whether the content-encoding is absent or identity.
func (h headerMap) isIdentity() bool {
	for _, v := range h["content-encoding"] {
		for _, tok := range strings.Split(v, ",") {
			if t := strings.TrimSpace(tok); t != "" && !strings.EqualFold(t, "identity") {
				return false
			}
		}
	}
	return true
}

// setHeader is a header mutation that overwrites name with value, in raw_value only (Envoy
// ignores value and rejects both being set), with the deprecated append=false that Envoy honours.
func setHeader(name, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header: &corev3.HeaderValue{Key: name, RawValue: []byte(value)},
		Append: wrapperspb.Bool(false),
	}
}

// contentLength is the mutation that makes content-length match a replaced body.
func contentLength(n int) *extprocv3.HeaderMutation {
	return &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{setHeader("content-length", strconv.Itoa(n))}}
}
