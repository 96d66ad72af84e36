package testenv

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/rkms/rkms"

// rigImporters are the product-tree directories allowed to import the rigs in non-test files:
// cmd/rkms-load is the load rig's own command.
var rigImporters = []string{"cmd/rkms-load"}

// TestRigsStayOutOfTheProduct fails if a non-test file outside internal/testing/ imports
// internal/testing/... (only _test.go files and rigImporters may), or if a rig imports
// examples/. It parses import clauses only, so it is cheap and runs under -short.
func TestRigsStayOutOfTheProduct(t *testing.T) {
	root := RepoRoot(t)
	fset := token.NewFileSet()
	files := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "vendor" || name == "node_modules" || name == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		files++
		rig := rel == "internal/testing" || strings.HasPrefix(rel, "internal/testing/")
		allowed := rig
		for _, dir := range rigImporters {
			allowed = allowed || rel == dir
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			switch {
			case !allowed && (p == module+"/internal/testing" || strings.HasPrefix(p, module+"/internal/testing/")):
				t.Errorf("%s/%s imports the test rig %s: product code must not (move the helper, or import it from a _test.go file)", rel, name, p)
			case rig && strings.HasPrefix(p, module+"/examples/"):
				t.Errorf("%s/%s imports %s: rigs must not depend on the examples (take what they need as a parameter)", rel, name, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("read only %d non-test Go files under %s: is RepoRoot right?", files, root)
	}
}
