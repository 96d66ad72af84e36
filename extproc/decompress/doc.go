// Package decompress decodes the content codings of HTTP bodies (RFC 9110, section 8.4) that
// rkms rewrites, within bounds fixed before the first byte is decoded.
//
// # Codings
//
// [Parse] reads the content-encoding header: absent, empty or "identity" is [Identity];
// otherwise exactly one of gzip (also x-gzip), deflate (the zlib format, RFC 1950, as RFC 9110
// requires; a raw deflate stream is refused as corrupt), br (RFC 7932) and zstd (RFC 8878, with
// the 8 MiB window limit of RFC 9659). "identity" tokens beside it are ignored. Two codings
// applied on top of each other ("gzip, br", or gzip on two header lines) are refused with
// [ErrStacked], and any other coding with [ErrUnsupported]: rkms never passes a body it could not
// read to an application that might.
//
// # Bounds
//
// [Limits] bounds the decoded size (MaxSize) and the ratio of decoded to encoded bytes
// (MaxRatio). The decoder is read through a limit of the smaller bound plus one byte, so a
// decompression bomb is never expanded beyond the bound: it fails with [ErrTooLarge] after at
// most bound+1 bytes were produced. Besides its output, a decoder holds at most
// [Coding.StateBytes] of its own state (window and tables), which the caller charges to its
// memory budget before decoding.
//
// # Failure behaviour
//
// Errors wrap one of [ErrUnsupported], [ErrStacked], [ErrTooLarge] or [ErrCorrupt] (a
// truncated or empty stream, a bad checksum, bytes after the end of the stream, a zstd frame that
// needs a dictionary). A zstd frame whose window (or single-segment content size) is over 8 MiB
// is [ErrUnsupported]: it is refused before its window is allocated. Messages never contain
// decoded bytes.
package decompress
