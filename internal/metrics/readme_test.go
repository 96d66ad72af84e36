package metrics

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestREADMEListsEveryMetric: every metric family this package registers has a row in README.md's
// metrics table, and every row names a family that exists, so that an operator reading the
// README can find every series /metrics serves (four families had no row).
func TestREADMEListsEveryMetric(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	name := regexp.MustCompile(`(?:Name:\s*|NewDesc\(\s*)"(rkms_[a-z0-9_]+)"`)
	var registered []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range name.FindAllSubmatch(b, -1) {
			registered = append(registered, string(m[1]))
		}
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| (`rkms_[a-z0-9_]+`(?:, `rkms_[a-z0-9_]+`)*) \\|")
	var documented []string
	for _, m := range row.FindAllSubmatch(readme, -1) {
		for _, n := range strings.Split(string(m[1]), ", ") {
			documented = append(documented, strings.Trim(n, "`"))
		}
	}
	if len(registered) < 10 || len(documented) < 10 {
		t.Fatalf("found %d registered and %d documented metrics: the patterns no longer match", len(registered), len(documented))
	}
	for _, n := range registered {
		if !slices.Contains(documented, n) {
			t.Errorf("metric %s has no row in README.md's metrics table", n)
		}
	}
	for _, n := range documented {
		if !slices.Contains(registered, n) {
			t.Errorf("README.md documents metric %s, which is not registered", n)
		}
	}
}
