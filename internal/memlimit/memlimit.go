// Package memlimit reads the container's memory limit (cgroup v2 or v1). The rules that size
// rkms's memory from it (the body budget, the Go soft limit) belong to extproc/limits.
package memlimit

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// CgroupRoot is where Linux mounts the cgroup file system.
const CgroupRoot = "/sys/fs/cgroup"

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
