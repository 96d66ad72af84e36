// Package limits owns the bounds of the ext_proc server: the defaults of its options, the
// validity rule of each, and the rules that size its body memory budget. The server
// (package extproc) applies them, and the config loader reads them without importing the gRPC
// server (style: the config model is not the protocol machine).
//
// # Memory rules
//
//   - A body held by the ext_proc server costs [BodyCostFactor] times its size (measured: see
//     extproc's TestBodyCostFactor and RELIABILITY.md, "Memory").
//   - The budget for bodies is half the container limit, or [DefaultMemoryBudget] when no limit
//     is known, and never less than one largest body ([MinBudget]).
//   - The Go runtime's soft limit (debug.SetMemoryLimit) is 90 % of the container limit ([GoLimit]),
//     unless the GOMEMLIMIT environment variable sets it.
//
// The other half of the container limit is for everything else: the Go runtime, gRPC's
// buffers, the key cache, garbage between collections.
package limits

import (
	"fmt"
	"time"
)

// Defaults of the ext_proc server's options (extproc.Options).
const (
	DefaultMaxBodyBytes = 1 << 20                 // Envoy's default per-connection buffer limit
	DefaultKeyTimeout   = 1500 * time.Millisecond // below the 2 s message_timeout of the shipped configs
	// DefaultMaxFields bounds the values one body may have selected (each costs a seal or open).
	DefaultMaxFields = 10000
	// DefaultMaxConcurrentStreams bounds the streams in flight, per connection and in the server.
	DefaultMaxConcurrentStreams = 1024
	// DefaultStreamTimeout bounds a stream's whole life. Through the shipped Envoy (route timeout
	// 15 s, message_timeout 2 s) a stream ends long before it: it bounds direct peers and stuck
	// streams.
	DefaultStreamTimeout = 60 * time.Second
	// DefaultIdleTimeout bounds the wait for the next message after an answer; above the shipped
	// route timeout (15 s), which bounds the wait for the upstream's response headers.
	DefaultIdleTimeout = 30 * time.Second
	// DefaultFirstMessageTimeout bounds the wait for a new stream's first message; Envoy opens a
	// stream when it has request_headers to send, so it comes at once.
	DefaultFirstMessageTimeout = 5 * time.Second
	// DefaultMemoryBudget is the budget for body bytes held across all streams when
	// Options.MemoryBudget is 0 and no container memory limit is known ([Budget]).
	DefaultMemoryBudget = 256 << 20
	// MaxBodyBytesLimit, MaxFieldsLimit and MaxConcurrentStreamsLimit are the largest values
	// of those Options ([CheckMaxBodyBytes], [CheckMaxFields], [CheckMaxConcurrentStreams]).
	MaxBodyBytesLimit         = 64 << 20
	MaxFieldsLimit            = 1000000
	MaxConcurrentStreamsLimit = 1000000
	// DefaultMaxCompressionRatio bounds the decoded size of a compressed body per encoded byte
	// (besides MaxBodyBytes): JSON rarely compresses beyond 20:1, a bomb reaches 1000:1 (deflate)
	// and more (br, zstd). MaxCompressionRatioLimit is the largest value accepted.
	DefaultMaxCompressionRatio = 100
	MaxCompressionRatioLimit   = 1 << 20
)

// CheckMaxCompressionRatio reports whether n is a valid Options.MaxCompressionRatio:
// 1..MaxCompressionRatioLimit.
func CheckMaxCompressionRatio(n int) error { return between(int64(n), 1, MaxCompressionRatioLimit) }

// BodyCostFactor is how many bytes the ext_proc server holds at the peak of one body's
// transform, per byte of body: the gRPC message buffer and the decoded request (1 each), the
// rewritten body's pooled buffer (1.5) and the encoded answer (about 1). Measured 4.64 for a
// 1 MiB body.
const BodyCostFactor = 5

// The checks below are the one rule for each bounded option: extproc.NewServer applies them once
// zero values have taken their defaults, and the config loader applies them to its keys.

// CheckMaxBodyBytes reports whether n is a valid Options.MaxBodyBytes: 1..MaxBodyBytesLimit.
func CheckMaxBodyBytes(n int64) error { return between(n, 1, MaxBodyBytesLimit) }

// CheckMaxFields reports whether n is a valid Options.MaxFields: 1..MaxFieldsLimit.
func CheckMaxFields(n int) error { return between(int64(n), 1, MaxFieldsLimit) }

// CheckMaxConcurrentStreams reports whether n is a valid Options.MaxConcurrentStreams:
// 1..MaxConcurrentStreamsLimit.
func CheckMaxConcurrentStreams(n int) error { return between(int64(n), 1, MaxConcurrentStreamsLimit) }

// CheckStreamShare reports whether share is a valid Options.MaxStreamsPerClient or
// MaxStreamsPerTenant under maxStreams (Options.MaxConcurrentStreams): 0 (a quarter of
// maxStreams) up to maxStreams.
func CheckStreamShare(share, maxStreams int) error {
	if share < 0 || share > maxStreams {
		return fmt.Errorf("must be between 0 (a quarter of the stream limit) and the stream limit %d (got %d)", maxStreams, share)
	}
	return nil
}

func between(n, lo, hi int64) error {
	if n < lo || n > hi {
		return fmt.Errorf("must be between %d and %d (got %d)", lo, hi, n)
	}
	return nil
}

// MinBudget is the smallest body memory budget that holds one body of maxBodyBytes.
func MinBudget(maxBodyBytes int) int64 { return BodyCostFactor * int64(maxBodyBytes) }

// CheckMemoryBudget reports whether budget is a valid body memory budget for bodies of up to
// maxBodyBytes: 0 (sized from the container's limit, [Budget]) or at least [MinBudget]. The
// ext_proc server and the config loader both use it.
func CheckMemoryBudget(budget int64, maxBodyBytes int) error {
	if minB := MinBudget(maxBodyBytes); budget < 0 || (budget > 0 && budget < minB) {
		return fmt.Errorf("must be 0 (from the container memory limit) or hold one largest body: at least %d "+
			"(%d x max_body_bytes) (got %d)", minB, BodyCostFactor, budget)
	}
	return nil
}

// Budget is the default body memory budget: half of a known container limit, else
// DefaultMemoryBudget; at least MinBudget(maxBodyBytes).
func Budget(limit int64, known bool, maxBodyBytes int) int64 {
	b := int64(DefaultMemoryBudget)
	if known {
		b = limit / 2
	}
	return max(b, MinBudget(maxBodyBytes))
}

// GoLimit is the Go runtime's soft memory limit for a container limit: 90 % of it.
func GoLimit(limit int64) int64 { return limit / 10 * 9 }
