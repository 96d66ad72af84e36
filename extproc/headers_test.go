package extproc

import (
	"reflect"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

func TestParseHeaders(t *testing.T) {
	raw := func(k, v string) *corev3.HeaderValue { return &corev3.HeaderValue{Key: k, RawValue: []byte(v)} }
	for _, tc := range []struct {
		name string
		in   []*corev3.HeaderValue
		want headerMap
	}{
		{"none", nil, headerMap{}},
		{"raw values", []*corev3.HeaderValue{raw(":path", "/p?q=1"), raw("content-type", "application/json")},
			headerMap{":path": {"/p?q=1"}, "content-type": {"application/json"}}},
		{"names lowercased", []*corev3.HeaderValue{raw("X-Tenant-ID", "acme")}, headerMap{"x-tenant-id": {"acme"}}},
		{"deprecated value field", []*corev3.HeaderValue{{Key: "a", Value: "old"}, raw("b", "new")},
			headerMap{"a": {"old"}, "b": {"new"}}},
		{"raw value wins", []*corev3.HeaderValue{{Key: "a", Value: "old", RawValue: []byte("new")}}, headerMap{"a": {"new"}}},
		{"empty value", []*corev3.HeaderValue{raw("a", ""), raw("b", "x")}, headerMap{"a": {""}, "b": {"x"}}},
		{"repeats keep order and do not clobber neighbours",
			[]*corev3.HeaderValue{raw("x", "1"), raw("y", "2"), raw("x", "3"), raw("z", "4"), raw("X", "5")},
			headerMap{"x": {"1", "3", "5"}, "y": {"2"}, "z": {"4"}}},
		{"non-ASCII bytes kept", []*corev3.HeaderValue{raw("a", "\xff\x00b")}, headerMap{"a": {"\xff\x00b"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := parseHeaders(&corev3.HeaderMap{Headers: tc.in})
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func BenchmarkParseHeaders(b *testing.B) {
	hm := &corev3.HeaderMap{}
	for _, kv := range [][2]string{{":authority", "127.0.0.1:10000"}, {":path", "/patients"}, {":method", "POST"},
		{":scheme", "http"}, {"user-agent", "curl/8"}, {"content-type", "application/json"}, {"content-length", "1024"},
		{"x-tenant-id", "t1"}, {"x-forwarded-proto", "http"}, {"x-request-id", "5f7b2c1e-0000"}} {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: kv[0], RawValue: []byte(kv[1])})
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = parseHeaders(hm)
	}
}
