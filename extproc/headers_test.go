package extproc

import (
	"maps"
	"reflect"
	"slices"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/rkms/rkms/extproc/decompress"
)

func TestParseHeaders(t *testing.T) {
	raw := func(k, v string) *corev3.HeaderValue { return &corev3.HeaderValue{Key: k, RawValue: []byte(v)} }
	for _, tc := range []struct {
		name string
		in   []*corev3.HeaderValue
		want map[string][]string
	}{
		{"none", nil, map[string][]string{}},
		{"raw values", []*corev3.HeaderValue{raw(":path", "/p?q=1"), raw("content-type", "application/json")},
			map[string][]string{":path": {"/p?q=1"}, "content-type": {"application/json"}}},
		{"names lowercased", []*corev3.HeaderValue{raw("X-Tenant-ID", "acme")}, map[string][]string{"x-tenant-id": {"acme"}}},
		{"deprecated value field", []*corev3.HeaderValue{{Key: "a", Value: "old"}, raw("b", "new")},
			map[string][]string{"a": {"old"}, "b": {"new"}}},
		{"raw value wins", []*corev3.HeaderValue{{Key: "a", Value: "old", RawValue: []byte("new")}}, map[string][]string{"a": {"new"}}},
		{"empty value", []*corev3.HeaderValue{raw("a", ""), raw("b", "x")}, map[string][]string{"a": {""}, "b": {"x"}}},
		{"repeats keep order and do not clobber neighbours",
			[]*corev3.HeaderValue{raw("x", "1"), raw("y", "2"), raw("x", "3"), raw("z", "4"), raw("X", "5")},
			map[string][]string{"x": {"1", "3", "5"}, "y": {"2"}, "z": {"4"}}},
		{"non-ASCII bytes kept", []*corev3.HeaderValue{raw("a", "\xff\x00b")}, map[string][]string{"a": {"\xff\x00b"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := parseHeaders(&corev3.HeaderMap{Headers: tc.in}).byName()
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

// byName groups h by name, values in order, for comparisons in tests.
func (h headerMap) byName() map[string][]string {
	m := map[string][]string{}
	for _, hd := range h {
		m[hd.name] = append(m[hd.name], hd.value)
	}
	return m
}

// headersOf builds a headerMap from names to values (names in sorted order).
func headersOf(m map[string][]string) headerMap {
	var h headerMap
	for _, name := range slices.Sorted(maps.Keys(m)) {
		for _, v := range m[name] {
			h = append(h, header{name: name, value: v})
		}
	}
	return h
}

func TestHeaderLookups(t *testing.T) {
	h := headersOf(map[string][]string{
		"a": {"1"}, "dup": {"x", "y"}, "same": {"s", "s"}, "empty": {""}, "empty-then": {"", "v"},
		"content-type": {"application/json", "application/problem+json"}, "content-encoding": {"identity", "gzip"},
	})
	for _, tc := range []struct{ name, first string }{
		{"a", "1"}, {"dup", "x"}, {"same", "s"}, {"empty", ""}, {"empty-then", ""}, {"absent", ""},
	} {
		if got := h.first(tc.name); got != tc.first {
			t.Errorf("first(%q) = %q, want %q", tc.name, got, tc.first)
		}
	}
	if !h.isJSON() {
		t.Error("isJSON = false, want true")
	}
	if c, err := decompress.Parse(h.Values("content-encoding")); c != decompress.Gzip || err != nil {
		t.Errorf("content-encoding identity, gzip: %v, %v; want gzip", c, err)
	}
	if (headerMap{}).isJSON() {
		t.Error("no headers: want not JSON")
	}
}
