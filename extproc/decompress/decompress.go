package decompress

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
)

// Coding is a content coding that rkms can decode.
type Coding uint8

const (
	Identity Coding = iota // no coding
	Gzip                   // gzip (RFC 1952), also named x-gzip
	Deflate                // deflate: the zlib format (RFC 1950)
	Brotli                 // br (RFC 7932)
	Zstd                   // zstd (RFC 8878)
)

// String returns the coding's name as written in content-encoding.
func (c Coding) String() string {
	switch c {
	case Gzip:
		return "gzip"
	case Deflate:
		return "deflate"
	case Brotli:
		return "br"
	case Zstd:
		return "zstd"
	}
	return "identity"
}

// ZstdMaxWindow is the largest zstd window decoded: the limit of RFC 9659 for the zstd content
// coding. Larger windows are refused ([ErrCorrupt]).
const ZstdMaxWindow = 8 << 20

// StateBytes bounds the memory a decoder of c holds besides its output: the window and tables.
// gzip and deflate: the 32 KiB window and Huffman tables; br: a window of at most 16 MiB
// (lgwin 24; large windows are not enabled); zstd: ZstdMaxWindow plus its block buffers
// (low-memory mode). TestStateBytes measures them (zstd: about 9.7 MB with an 8 MiB window).
func (c Coding) StateBytes() int64 {
	switch c {
	case Gzip, Deflate:
		return 64 << 10
	case Brotli:
		return 16<<20 + 256<<10
	case Zstd:
		return ZstdMaxWindow + 2<<20
	}
	return 0
}

// Errors of Parse and the decoders; see the package documentation.
var (
	ErrUnsupported = errors.New("content-encoding is not supported")
	ErrStacked     = errors.New("stacked content-encodings are not supported")
	ErrTooLarge    = errors.New("decompressed body too large")
	ErrCorrupt     = errors.New("compressed body is corrupt or truncated")
)

// Parse returns the coding named by the values of the content-encoding header (every header
// line, in order). See the package documentation for what it accepts.
func Parse(values iter.Seq[string]) (Coding, error) {
	c := Identity
	for v := range values {
		for tok := range strings.SplitSeq(v, ",") {
			t := strings.TrimSpace(tok)
			var next Coding
			switch {
			case t == "" || strings.EqualFold(t, "identity"):
				continue
			case strings.EqualFold(t, "gzip") || strings.EqualFold(t, "x-gzip"):
				next = Gzip
			case strings.EqualFold(t, "deflate"):
				next = Deflate
			case strings.EqualFold(t, "br"):
				next = Brotli
			case strings.EqualFold(t, "zstd"):
				next = Zstd
			default:
				return Identity, ErrUnsupported
			}
			if c != Identity {
				return Identity, ErrStacked
			}
			c = next
		}
	}
	return c, nil
}

// Limits bounds a decoded body.
type Limits struct {
	MaxSize  int64 // largest decoded size in bytes; must be positive
	MaxRatio int64 // largest decoded size per encoded byte; 0: no ratio bound
}

// Bound is the largest decoded size of an encoded body of n bytes.
func (l Limits) Bound(n int) int64 {
	b := l.MaxSize
	if l.MaxRatio > 0 && int64(n) <= b/l.MaxRatio {
		b = max(int64(n)*l.MaxRatio, 0)
	}
	return b
}

// NewReader returns a reader of the decoded bytes of r, encoded with c, that fails with
// [ErrTooLarge] once more than limit bytes are decoded (having decoded at most limit+1) and
// with [ErrCorrupt] on a malformed or truncated stream. Close releases the decoder.
func NewReader(c Coding, r io.Reader, limit int64) (io.ReadCloser, error) {
	var dec io.Reader
	var closer func()
	switch c {
	case Identity:
		dec = r
	case Gzip:
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, corrupt(c, err)
		}
		dec = zr
	case Deflate:
		zr, err := zlib.NewReader(r)
		if err != nil {
			return nil, corrupt(c, err)
		}
		dec = zr
	case Brotli:
		dec = brotli.NewReader(r)
	case Zstd:
		// MaxMemory bounds the window of a single-segment frame (its declared content size),
		// which MaxWindow does not: without it a 20-byte frame declaring 1 TiB would allocate it.
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(ZstdMaxWindow), zstd.WithDecoderMaxMemory(ZstdMaxWindow))
		if err != nil {
			return nil, fmt.Errorf("zstd decoder: %w", err)
		}
		dec, closer = zr, zr.Close
	default:
		return nil, ErrUnsupported
	}
	return &reader{c: c, lr: io.LimitedReader{R: dec, N: limit + 1}, limit: limit, close: closer}, nil
}

// reader is a decoder behind a limit of limit+1 bytes: reading the extra byte means the
// decoded body is over the limit.
type reader struct {
	c     Coding
	lr    io.LimitedReader
	limit int64
	close func()
	err   error
}

func (r *reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.lr.Read(p)
	if r.lr.N <= 0 {
		// The byte past the limit was decoded: nothing of it is returned.
		r.err = fmt.Errorf("%w: %s body decodes to more than %d bytes", ErrTooLarge, r.c, r.limit)
		return max(n-1, 0), r.err
	}
	switch {
	case err == nil || errors.Is(err, io.EOF):
	case errors.Is(err, zstd.ErrWindowSizeExceeded), errors.Is(err, zstd.ErrDecoderSizeExceeded):
		r.err = fmt.Errorf("%w: zstd frame needs a window over %d bytes", ErrUnsupported, ZstdMaxWindow)
		err = r.err
	default:
		r.err = corrupt(r.c, err)
		err = r.err
	}
	return n, err
}

func (r *reader) Close() error {
	if r.close != nil {
		r.close()
		r.close = nil
	}
	return nil
}

// corrupt wraps a decoder's error as ErrCorrupt. The decoder's message names what is wrong
// with the stream, never its content.
func corrupt(c Coding, err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("%w: %s: %w", ErrCorrupt, c, err)
}

// Append decodes src, encoded with c, and appends the decoded bytes to dst, within lim
// ([Limits.Bound] of len(src)). On error the returned slice is dst with what was decoded so
// far: the caller must clear it if the body is sensitive. The whole of src must be one stream
// (gzip: one or more members): trailing bytes are [ErrCorrupt].
func Append(dst []byte, c Coding, src []byte, lim Limits) ([]byte, error) {
	if c == Identity {
		return append(dst, src...), nil
	}
	if len(src) == 0 {
		return dst, fmt.Errorf("%w: %s: empty", ErrCorrupt, c)
	}
	limit := lim.Bound(len(src))
	br := bytes.NewReader(src)
	r, err := NewReader(c, br, limit)
	if err != nil {
		return dst, err
	}
	defer r.Close()
	start := len(dst)
	for {
		if len(dst) == cap(dst) {
			// Double, and never past the bound (plus the byte that detects it).
			room := min(max(int64(cap(dst)-start), 4<<10), limit+1-int64(len(dst)-start))
			dst = grow(dst, int(max(room, 1)))
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return dst, err
		}
	}
	if br.Len() > 0 {
		return dst, fmt.Errorf("%w: %s: %d bytes after the end of the stream", ErrCorrupt, c, br.Len())
	}
	return dst, nil
}

// grow returns b with room for n more bytes, clearing the old array when it moves (it may hold
// a decoded body).
func grow(b []byte, n int) []byte {
	nb := make([]byte, len(b), len(b)+n)
	copy(nb, b)
	clear(b[:cap(b)])
	return nb
}
