package testenv

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestPublicAPINamesNoInternalType fails if the public API of a public package names a type of
// an internal/ package: code outside the module cannot name such a type, so it cannot use the
// API that carries it (style.md, habit 17). Public packages are the module's packages outside
// internal/, cmd/ and examples/. Their public API, read from the syntax of non-test files:
// exported functions and methods of exported types (type parameters, parameters, results),
// exported types (the type itself; of a struct its exported and embedded fields, of an
// interface every method and embedded type) and the declared types and composite literals of
// exported variables and constants. A value whose type is only inferred (const X = internalpkg.C,
// var Y = internalpkg.New()) is not checked: telling its type needs type checking.
//
// It parses source only, so it is cheap and runs under -short.
func TestPublicAPINamesNoInternalType(t *testing.T) {
	root := RepoRoot(t)
	pkgs, err := publicPackageDirs(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"envelope", "keyring", "store", "extproc", "extproc/policy"} {
		if !slices.Contains(pkgs, want) {
			t.Fatalf("public packages %q lack %s: is RepoRoot right?", pkgs, want)
		}
	}
	for _, rel := range pkgs {
		for _, v := range publicAPIViolations(t, root, rel) {
			t.Errorf("%s", v)
		}
	}
}

// TestPublicAPICheckCatchesInternalTypes feeds the checker one public package whose API names
// internal types in each place it looks, and one that only uses them inside, so that a checker
// that silently finds nothing cannot pass.
func TestPublicAPICheckCatchesInternalTypes(t *testing.T) {
	root := t.TempDir()
	write := func(rel, src string) {
		t.Helper()
		dir := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "x.go"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("internal/secret", "package secret\n\ntype Key struct{}\n")
	write("internal/renamed", "package other\n\ntype T int\n")
	write("leaky", `package leaky

import (
	"github.com/rkms/rkms/internal/renamed"
	s "github.com/rkms/rkms/internal/secret"
)

type Key struct {
	Secret *s.Key
	s.Key
	private s.Key
}

type Alias = other.T

type Source interface {
	Get() (map[string][]s.Key, error)
}

func New(k *s.Key) (Key, error) { return Key{}, nil }

func (Key) Method() other.T { return 0 }

func (unexported) Method() other.T { return 0 }

type unexported struct{}

var Default s.Key

var Zero = s.Key{}

func Generic[T other.T | int]() {}
`)
	write("clean", `package clean

import s "github.com/rkms/rkms/internal/secret"

type Key struct{ secret *s.Key }

func New() Key { var k s.Key; return Key{&k} }

func internalUse(k s.Key) {}
`)
	got := publicAPIViolations(t, root, "leaky")
	want := []string{
		"leaky: type Key field Secret names internal type github.com/rkms/rkms/internal/secret.Key",
		"leaky: type Key field Key names internal type github.com/rkms/rkms/internal/secret.Key",
		"leaky: type Alias names internal type github.com/rkms/rkms/internal/renamed.T",
		"leaky: type Source method Get names internal type github.com/rkms/rkms/internal/secret.Key",
		"leaky: func New names internal type github.com/rkms/rkms/internal/secret.Key",
		"leaky: method Key.Method names internal type github.com/rkms/rkms/internal/renamed.T",
		"leaky: var Default names internal type github.com/rkms/rkms/internal/secret.Key",
		"leaky: var Zero names internal type github.com/rkms/rkms/internal/secret.Key",
		"leaky: func Generic names internal type github.com/rkms/rkms/internal/renamed.T",
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("violations in leaky:\n got %q\nwant %q", got, want)
	}
	if got := publicAPIViolations(t, root, "clean"); len(got) != 0 {
		t.Errorf("violations in clean, which uses internal types only inside: %q", got)
	}
}

// publicPackageDirs lists, relative to root, the directories that hold a public package: non-test
// Go files, no internal, cmd or examples element, and nothing hidden or ignored by the go tool.
func publicPackageDirs(root string) ([]string, error) {
	var dirs []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path == root {
				return nil
			}
			rel, _ := filepath.Rel(root, path)
			rel = filepath.ToSlash(rel)
			if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" ||
				name == "vendor" || name == "node_modules" || name == "internal" ||
				rel == "cmd" || rel == "examples" {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") {
			rel, _ := filepath.Rel(root, filepath.Dir(path))
			rel = filepath.ToSlash(rel)
			if !slices.Contains(dirs, rel) { // a directory's files can come before and after its subdirectories
				dirs = append(dirs, rel)
			}
		}
		return nil
	})
	return dirs, err
}

// publicAPIViolations parses the non-test files of the package in root/rel and describes each
// place its public API names a type of an internal package of the module.
func publicAPIViolations(t *testing.T, root, rel string) []string {
	t.Helper()
	dir := filepath.Join(root, filepath.FromSlash(rel))
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var out []string
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		if f.Name.Name == "main" {
			continue
		}
		internal := internalImports(t, root, f)
		if len(internal) == 0 {
			continue
		}
		check := func(what string, n ast.Node) {
			if n == nil {
				return
			}
			ast.Inspect(n, func(n ast.Node) bool {
				sel, ok := n.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				if x, ok := sel.X.(*ast.Ident); ok {
					if p, ok := internal[x.Name]; ok {
						out = append(out, fmt.Sprintf("%s: %s names internal type %s.%s", rel, what, p, sel.Sel.Name))
					}
				}
				return false
			})
		}
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.FuncDecl:
				if !d.Name.IsExported() {
					continue
				}
				if d.Recv == nil {
					check("func "+d.Name.Name, d.Type)
				} else if recv := receiverName(d.Recv); ast.IsExported(recv) {
					check("method "+recv+"."+d.Name.Name, d.Type)
				}
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					switch s := spec.(type) {
					case *ast.TypeSpec:
						if s.Name.IsExported() {
							checkType(check, s)
						}
					case *ast.ValueSpec:
						for _, n := range s.Names {
							if !n.IsExported() {
								continue
							}
							what := strings.ToLower(d.Tok.String()) + " " + n.Name
							check(what, s.Type)
							for _, v := range s.Values {
								if u, ok := v.(*ast.UnaryExpr); ok {
									v = u.X
								}
								if cl, ok := v.(*ast.CompositeLit); ok {
									check(what, cl.Type)
								}
							}
							break // one report per spec
						}
					}
				}
			}
		}
	}
	return out
}

// checkType checks what an exported type shows: its type parameters and, for a struct, its
// exported and embedded fields; for an interface, all of it; otherwise the whole type.
func checkType(check func(string, ast.Node), s *ast.TypeSpec) {
	what := "type " + s.Name.Name
	if s.TypeParams != nil {
		check(what, s.TypeParams)
	}
	st, ok := s.Type.(*ast.StructType)
	if !ok {
		if it, ok := s.Type.(*ast.InterfaceType); ok {
			for _, m := range it.Methods.List {
				if len(m.Names) > 0 {
					check(what+" method "+m.Names[0].Name, m.Type)
				} else {
					check(what+" embedded", m.Type)
				}
			}
			return
		}
		check(what, s.Type)
		return
	}
	for _, field := range st.Fields.List {
		if len(field.Names) == 0 { // embedded: promoted, and named after its type
			check(what+" field "+embeddedName(field.Type), field.Type)
			continue
		}
		for _, n := range field.Names {
			if n.IsExported() {
				check(what+" field "+n.Name, field.Type)
				break
			}
		}
	}
}

// internalImports maps the names under which f refers to the module's internal packages to
// their import paths. An import without a name is known by its package clause, which need not
// match the directory (internal/testing/env is package testenv).
func internalImports(t *testing.T, root string, f *ast.File) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		if !strings.HasPrefix(p, module+"/") || !slices.Contains(strings.Split(p, "/"), "internal") {
			continue
		}
		if imp.Name != nil {
			m[imp.Name.Name] = p
			continue
		}
		m[packageName(t, filepath.Join(root, filepath.FromSlash(strings.TrimPrefix(p, module+"/"))))] = p
	}
	return m
}

// packageName reads the package clause of a non-test file in dir.
func packageName(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if n := e.Name(); strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go") {
			f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, n), nil, parser.PackageClauseOnly)
			if err != nil {
				t.Fatal(err)
			}
			return f.Name.Name
		}
	}
	t.Fatalf("no non-test Go file in %s", dir)
	return ""
}

// receiverName returns the name of the type of a method's receiver (T for t *T[K]).
func receiverName(recv *ast.FieldList) string {
	if len(recv.List) == 0 {
		return ""
	}
	return embeddedName(recv.List[0].Type)
}

// embeddedName returns the name of a type expression's type: T for T, *T, T[K] or pkg.T.
func embeddedName(e ast.Expr) string {
	for {
		switch x := e.(type) {
		case *ast.StarExpr:
			e = x.X
		case *ast.IndexExpr:
			e = x.X
		case *ast.IndexListExpr:
			e = x.X
		case *ast.SelectorExpr:
			return x.Sel.Name
		case *ast.Ident:
			return x.Name
		default:
			return ""
		}
	}
}
