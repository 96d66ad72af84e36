package decompress

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
)

// encode compresses b with c (the test's own encoders: testdata holds other tools' output).
func encode(t testing.TB, c Coding, b []byte, opts ...zstd.EOption) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	switch c {
	case Gzip:
		w = gzip.NewWriter(&buf)
	case Deflate:
		w = zlib.NewWriter(&buf)
	case Brotli:
		w = brotli.NewWriter(&buf)
	case Zstd:
		zw, err := zstd.NewWriter(&buf, opts...)
		if err != nil {
			t.Fatal(err)
		}
		w = zw
	default:
		return slices.Clone(b)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		values []string
		want   Coding
		err    error
	}{
		{nil, Identity, nil},
		{[]string{""}, Identity, nil},
		{[]string{"identity"}, Identity, nil},
		{[]string{"gzip"}, Gzip, nil},
		{[]string{"GZip"}, Gzip, nil},
		{[]string{"x-gzip"}, Gzip, nil},
		{[]string{"deflate"}, Deflate, nil},
		{[]string{"br"}, Brotli, nil},
		{[]string{"zstd"}, Zstd, nil},
		{[]string{" gzip , identity "}, Gzip, nil},
		{[]string{"identity", "br"}, Brotli, nil},
		{[]string{",,gzip,,"}, Gzip, nil},
		{[]string{"gzip, br"}, Identity, ErrStacked},
		{[]string{"gzip", "gzip"}, Identity, ErrStacked},
		{[]string{"deflate,deflate"}, Identity, ErrStacked},
		{[]string{"compress"}, Identity, ErrUnsupported},
		{[]string{"gzip;q=1"}, Identity, ErrUnsupported},
		{[]string{"aes128gcm"}, Identity, ErrUnsupported},
		{[]string{"gzip", "exi"}, Identity, ErrUnsupported},
	} {
		got, err := Parse(slices.Values(tc.values))
		if got != tc.want || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("Parse(%q) = %v, %v; want %v, %v", tc.values, got, err, tc.want, tc.err)
		}
	}
}

func TestBound(t *testing.T) {
	for _, tc := range []struct {
		lim  Limits
		n    int
		want int64
	}{
		{Limits{MaxSize: 1000}, 10, 1000},
		{Limits{MaxSize: 1000, MaxRatio: 10}, 10, 100},
		{Limits{MaxSize: 1000, MaxRatio: 10}, 100, 1000},
		{Limits{MaxSize: 1000, MaxRatio: 10}, 1000, 1000},
		{Limits{MaxSize: 1 << 20, MaxRatio: 100}, 0, 0},
	} {
		if got := tc.lim.Bound(tc.n); got != tc.want {
			t.Errorf("%+v.Bound(%d) = %d, want %d", tc.lim, tc.n, got, tc.want)
		}
	}
}

// TestGolden decodes the output of other implementations (gzip(1), zstd(1), Python's zlib)
// and the Go brotli encoder, and refuses what RFC 9110's codings are not.
func TestGolden(t *testing.T) {
	want, err := os.ReadFile("testdata/doc.json")
	if err != nil {
		t.Fatal(err)
	}
	lim := Limits{MaxSize: 1 << 20, MaxRatio: 100}
	for _, tc := range []struct {
		file string
		c    Coding
		err  error
	}{
		{"doc.json", Identity, nil},
		{"doc.json.gz", Gzip, nil},
		{"doc.json.zlib", Deflate, nil},
		{"doc.json.br", Brotli, nil},
		{"doc.json.zst", Zstd, nil},
		// HTTP's deflate is zlib: a raw deflate stream is not read as one.
		{"doc.json.rawdeflate", Deflate, ErrCorrupt},
		// The header names another coding than the body has.
		{"doc.json.zst", Gzip, ErrCorrupt},
		{"doc.json.gz", Deflate, ErrCorrupt},
		{"doc.json.gz", Zstd, ErrCorrupt},
		{"doc.json.zlib", Brotli, ErrCorrupt},
		{"doc.json", Gzip, ErrCorrupt},
		{"doc.json", Zstd, ErrCorrupt},
	} {
		t.Run(tc.file+"/"+tc.c.String(), func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := Append(nil, tc.c, src, lim)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("Append = %q, %v; want the document", got, err)
			}
		})
	}
}

func TestAppend(t *testing.T) {
	doc := []byte(`{"ssn":"123-45-6789","items":[` + strings.Repeat(`{"a":"b"},`, 200) + `{}]}`)
	zeros := make([]byte, 16<<20)
	lim := Limits{MaxSize: 1 << 20, MaxRatio: 200}
	for _, c := range []Coding{Gzip, Deflate, Brotli, Zstd} {
		enc := encode(t, c, doc)
		for _, tc := range []struct {
			name string
			src  []byte
			lim  Limits
			err  error
		}{
			{"round trip", enc, lim, nil},
			{"truncated by one byte", enc[:len(enc)-1], lim, ErrCorrupt},
			{"truncated to half", enc[:len(enc)/2], lim, ErrCorrupt},
			{"empty", nil, lim, ErrCorrupt},
			{"trailing garbage", append(slices.Clone(enc), "garbage"...), lim, ErrCorrupt},
			{"bomb: 16 MiB of zeros", encode(t, c, zeros), lim, ErrTooLarge},
			{"over MaxSize by one byte", enc, Limits{MaxSize: int64(len(doc)) - 1}, ErrTooLarge},
			{"exactly MaxSize", enc, Limits{MaxSize: int64(len(doc))}, nil},
			{"over the ratio", enc, Limits{MaxSize: 1 << 20, MaxRatio: int64(len(doc)/len(enc)) - 1}, ErrTooLarge},
		} {
			t.Run(c.String()+"/"+tc.name, func(t *testing.T) {
				prefix := []byte("prefix")
				got, err := Append(slices.Clone(prefix), c, tc.src, tc.lim)
				if !bytes.HasPrefix(got, prefix) {
					t.Fatalf("the prefix is lost: %q", got)
				}
				if bound := tc.lim.Bound(len(tc.src)); int64(cap(got)-len(prefix)) > max(bound+1, 4<<10) {
					t.Errorf("output grew to %d bytes for a bound of %d", cap(got)-len(prefix), bound)
				}
				if tc.err != nil {
					if !errors.Is(err, tc.err) {
						t.Fatalf("err = %v, want %v", err, tc.err)
					}
					return
				}
				if err != nil || !bytes.Equal(got[len(prefix):], doc) {
					t.Fatalf("Append = %d bytes, %v; want the document", len(got)-len(prefix), err)
				}
			})
		}
	}
}

// TestZstdWindow: a frame whose window is over RFC 9659's 8 MiB, or a single-segment frame
// that declares more, is refused before its window is allocated; one at 8 MiB decodes.
func TestZstdWindow(t *testing.T) {
	lim := Limits{MaxSize: 1 << 20}
	// Hand-made frames: magic, frame header descriptor, window descriptor or content size, and
	// one last raw block of one byte ("x").
	block := []byte{0x09, 0x00, 0x00, 'x'}
	frame := func(hdr ...byte) []byte {
		return append(append([]byte{0x28, 0xb5, 0x2f, 0xfd}, hdr...), block...)
	}
	for _, tc := range []struct {
		name string
		src  []byte
		err  error
	}{
		{"window 8 MiB", frame(0x00, 13<<3), nil},
		{"window 16 MiB", frame(0x00, 14<<3), ErrUnsupported},
		{"window 2 GiB", frame(0x00, 21<<3), ErrUnsupported},
		{"single segment of 1 TiB", frame(0xe0, 0, 0, 0, 0, 0, 1, 0, 0), ErrUnsupported},
		{"single segment of 1 byte", frame(0x20, 1), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			got, err := Append(nil, Zstd, tc.src, lim)
			runtime.ReadMemStats(&after)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
			} else if err != nil || string(got) != "x" {
				t.Fatalf("Append = %q, %v", got, err)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 20<<20 {
				t.Errorf("allocated %d bytes", alloc)
			}
		})
	}
	doc := bytes.Repeat([]byte(`{"a":1}`), 1000)
	ok := encode(t, Zstd, doc, zstd.WithWindowSize(8<<20), zstd.WithSingleSegment(false))
	if got, err := Append(nil, Zstd, ok, lim); err != nil || !bytes.Equal(got, doc) {
		t.Errorf("8 MiB window: %d bytes, %v", len(got), err)
	}
}

// TestReaderLimit: the streaming reader never returns a byte past the limit.
func TestReaderLimit(t *testing.T) {
	src := encode(t, Gzip, make([]byte, 1<<20))
	r, err := NewReader(Gzip, bytes.NewReader(src), 1000)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if !errors.Is(err, ErrTooLarge) || len(got) > 1000 {
		t.Fatalf("read %d bytes, %v; want at most 1000 and ErrTooLarge", len(got), err)
	}
	if _, err := r.Read(make([]byte, 10)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("read after the limit: %v", err)
	}
}

func TestUnknownCoding(t *testing.T) {
	if _, err := Append(nil, Coding(99), []byte("x"), Limits{MaxSize: 10}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("err = %v", err)
	}
	if s := Coding(99).String(); s != "identity" {
		t.Errorf("String = %q", s)
	}
}

// BenchmarkAppend decodes a 1 MiB JSON body per coding. Compare runs with benchstat
// (go test -bench Append -count 6).
func BenchmarkAppend(b *testing.B) {
	doc := bytes.Repeat([]byte(`{"id":"12345","ssn":"123-45-6789","email":"someone@example.com"},`), (1<<20)/64)
	lim := Limits{MaxSize: 2 << 20}
	for _, c := range []Coding{Gzip, Deflate, Brotli, Zstd} {
		enc := encode(b, c, doc)
		b.Run(c.String(), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(doc)))
			var dst []byte
			for b.Loop() {
				var err error
				if dst, err = Append(dst[:0], c, enc, lim); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestStateBytes: what decoding allocates, bombs and the largest windows included, stays within
// StateBytes plus the output's growth (doubling: at most twice the bound, and the final array),
// which is what the ext_proc server reserves before decoding.
func TestStateBytes(t *testing.T) {
	const maxSize = 1 << 20
	zeros := make([]byte, 64<<20)
	big := bytes.Repeat([]byte(`{"id":"12345","ssn":"123-45-6789"},`), (2<<20)/35)
	for _, tc := range []struct {
		c   Coding
		src []byte
	}{
		{Gzip, encode(t, Gzip, zeros)},
		{Deflate, encode(t, Deflate, zeros)},
		{Brotli, encode(t, Brotli, zeros)},
		{Brotli, func() []byte {
			var b bytes.Buffer
			w := brotli.NewWriterOptions(&b, brotli.WriterOptions{Quality: 5, LGWin: 24})
			w.Write(big)
			w.Close()
			return b.Bytes()
		}()},
		{Zstd, encode(t, Zstd, zeros)},
		{Zstd, encode(t, Zstd, big, zstd.WithWindowSize(8<<20), zstd.WithSingleSegment(false))},
	} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := Append(nil, tc.c, tc.src, Limits{MaxSize: maxSize})
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: err = %v, want ErrTooLarge", tc.c, err)
		}
		alloc := int64(after.TotalAlloc - before.TotalAlloc)
		if limit := tc.c.StateBytes() + 3*maxSize; alloc > limit {
			t.Errorf("%s: allocated %d bytes, over StateBytes + 3 x bound = %d", tc.c, alloc, limit)
		}
		t.Logf("%s: %d bytes allocated (StateBytes %d)", tc.c, alloc, tc.c.StateBytes())
	}
}
