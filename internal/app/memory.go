package app

import (
	"github.com/rkms/rkms/extproc/limits"
	"log/slog"
	"runtime/debug"

	"github.com/rkms/rkms/internal/config"
	"github.com/rkms/rkms/internal/memlimit"
)

// memorySettings is how rkms sizes its memory from the container's limit (memlimit's rules).
type memorySettings struct {
	containerLimit int64 // bytes; 0 when none is known
	budget         int64 // ext_proc body budget (extproc.memory_budget_bytes, else derived)
	goLimit        int64 // Go soft limit to set; 0 to leave the runtime's (GOMEMLIMIT set, or no limit known)
}

// sizeMemory reads the container limit under cgroupRoot. gomemlimit is the GOMEMLIMIT
// environment variable: when set, the runtime has applied it and rkms leaves it alone.
func sizeMemory(e config.ExtProc, cgroupRoot, gomemlimit string) memorySettings {
	limit, known := memlimit.Limit(cgroupRoot)
	ms := memorySettings{budget: e.MemoryBudgetBytes}
	if known {
		ms.containerLimit = limit
		if gomemlimit == "" {
			ms.goLimit = limits.GoLimit(limit)
		}
	}
	if ms.budget == 0 {
		ms.budget = limits.Budget(limit, known, int(e.MaxBodyBytes))
	}
	return ms
}

// apply sets the Go soft memory limit if it is to be set, and logs every figure.
func (ms memorySettings) apply(log *slog.Logger, gomemlimit string) {
	goLimit := "runtime default (no container limit known)"
	switch {
	case gomemlimit != "":
		goLimit = "GOMEMLIMIT=" + gomemlimit
	case ms.goLimit > 0:
		debug.SetMemoryLimit(ms.goLimit)
		goLimit = "90% of the container limit"
	}
	log.Info("memory", "container_limit_bytes", ms.containerLimit, "go_memory_limit_bytes", debug.SetMemoryLimit(-1),
		"go_memory_limit", goLimit, "extproc_memory_budget_bytes", ms.budget)
}
