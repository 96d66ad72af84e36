package limits

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// Bounds and defaults of the slow-stream trace (extproc.SlowTraceOptions, config key
// extproc.slow_trace).
const (
	DefaultSlowTraceMaxFiles    = 10
	SlowTraceMaxFilesLimit      = 1000
	DefaultSlowTraceMinInterval = time.Minute
)

// CheckSlowTrace reports what is wrong with a slow-stream trace setting: threshold > 0, dir an
// existing directory, maxFiles 0 (the default) to SlowTraceMaxFilesLimit, minInterval >= 0 (0:
// the default).
func CheckSlowTrace(threshold time.Duration, dir string, maxFiles int, minInterval time.Duration) error {
	var errs []error
	if threshold <= 0 {
		errs = append(errs, errors.New("threshold must be a positive duration"))
	}
	if maxFiles < 0 || maxFiles > SlowTraceMaxFilesLimit {
		errs = append(errs, fmt.Errorf("max_files must be between 0 (default %d) and %d", DefaultSlowTraceMaxFiles, SlowTraceMaxFilesLimit))
	}
	if minInterval < 0 {
		errs = append(errs, errors.New("min_interval must not be negative"))
	}
	if dir == "" {
		errs = append(errs, errors.New("dir must be set"))
	} else if fi, err := os.Stat(dir); err != nil {
		errs = append(errs, fmt.Errorf("dir: %w", err))
	} else if !fi.IsDir() {
		errs = append(errs, fmt.Errorf("dir %q is not a directory", dir))
	}
	return errors.Join(errs...)
}
