// Package memlimit reads the container's memory limit (cgroup v2 or v1) and owns the rules that
// size rkms's memory from it: the ext_proc body memory budget and the Go runtime's soft limit.
//
// # Rules
//
//   - A body held by the ext_proc server costs [BodyCostFactor] times its size (measured: see
//     extproc's TestBodyCostFactor and RELIABILITY.md, "Memory").
//   - The budget for bodies is half the container limit, or [DefaultBudget] when no limit is
//     known, and never less than one largest body ([MinBudget]).
//   - The Go runtime's soft limit (debug.SetMemoryLimit) is 90 % of the container limit, unless
//     the GOMEMLIMIT environment variable sets it.
//
// The other half of the container limit is for everything else: the Go runtime, gRPC's
// buffers, the key cache, garbage between collections.
package memlimit

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// CgroupRoot is where Linux mounts the cgroup file system.
const CgroupRoot = "/sys/fs/cgroup"

// BodyCostFactor is how many bytes the ext_proc server holds at the peak of one body's
// transform, per byte of body: the gRPC message buffer and the decoded request (1 each), the
// rewritten body's pooled buffer (1.5) and the encoded answer (about 1). Measured 4.64 for a
// 1 MiB body.
const BodyCostFactor = 5

// DefaultBudget is the body memory budget when no container limit is known.
const DefaultBudget = 256 << 20

// maxPlausible is the largest limit taken as a real one: cgroup v1 writes "no limit" as a value
// near 2^63, and no container is given a petabyte.
const maxPlausible = 1 << 50

// Limit returns the memory limit of the container rkms runs in, read under root (normally
// [CgroupRoot]): cgroup v2's memory.max, else cgroup v1's memory/memory.limit_in_bytes. ok is
// false when no limit is set ("max", v1's "unlimited"), the value is not a plausible number of
// bytes, or neither file can be read.
func Limit(root string) (limit int64, ok bool) {
	for _, f := range []string{"memory.max", filepath.Join("memory", "memory.limit_in_bytes")} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || n <= 0 || n >= maxPlausible {
			return 0, false // "max", or absurd: no limit
		}
		return n, true
	}
	return 0, false
}

// MinBudget is the smallest body memory budget that holds one body of maxBodyBytes.
func MinBudget(maxBodyBytes int) int64 { return BodyCostFactor * int64(maxBodyBytes) }

// CheckBudget reports whether budget is a valid body memory budget for bodies of up to
// maxBodyBytes: 0 (sized from the container's limit, [Budget]) or at least [MinBudget]. The
// ext_proc server and the config loader both use it.
func CheckBudget(budget int64, maxBodyBytes int) error {
	if minB := MinBudget(maxBodyBytes); budget < 0 || (budget > 0 && budget < minB) {
		return fmt.Errorf("must be 0 (from the container memory limit) or hold one largest body: at least %d "+
			"(%d x max_body_bytes) (got %d)", minB, BodyCostFactor, budget)
	}
	return nil
}

// Budget is the default body memory budget: half of a known container limit, else
// DefaultBudget; at least MinBudget(maxBodyBytes).
func Budget(limit int64, known bool, maxBodyBytes int) int64 {
	b := int64(DefaultBudget)
	if known {
		b = limit / 2
	}
	return max(b, MinBudget(maxBodyBytes))
}

// GoLimit is the Go runtime's soft memory limit for a container limit: 90 % of it.
func GoLimit(limit int64) int64 { return limit / 10 * 9 }
