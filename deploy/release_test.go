package deploy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/rkms/rkms/internal/testing/env"
)

// TestReleaseRecipe: `make release` builds every platform through `make build` (so the release
// binaries get exactly its flags and version stamp; TestDockerfileBuildsLikeMake checks those),
// and `make -n release` plans one build per platform, named rkms-VERSION-OS-ARCH.
func TestReleaseRecipe(t *testing.T) {
	recipe := strings.Join(makeRecipe(t, readRepoFile(t, "Makefile"), "release"), "\n")
	for _, want := range []string{"$(MAKE) --no-print-directory build VERSION=$(VERSION) BIN=$(DIST)/rkms-$(VERSION)-", "GOOS=", "GOARCH=", "sha256sum rkms-* > SHA256SUMS"} {
		if !strings.Contains(recipe, want) {
			t.Errorf("release recipe lacks %q:\n%s", want, recipe)
		}
	}
	if strings.Contains(recipe, "go build") || strings.Contains(recipe, "$(GO) build") {
		t.Errorf("release runs its own go build: use make build\n%s", recipe)
	}
	cmd := exec.Command("make", "-n", "release", "VERSION=v9.8.7", "DIST=/nonexistent/dist")
	cmd.Dir = testenv.RepoRoot(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make -n release: %v\n%s", err, out)
	}
	var builds []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, " build ") && strings.HasPrefix(line, "CGO_ENABLED=0 ") {
			builds = append(builds, line)
		}
	}
	if len(builds) != 2 ||
		!strings.HasSuffix(builds[0], "-o /nonexistent/dist/rkms-v9.8.7-linux-amd64 ./cmd/rkms") ||
		!strings.HasSuffix(builds[1], "-o /nonexistent/dist/rkms-v9.8.7-linux-arm64 ./cmd/rkms") {
		t.Fatalf("make -n release plans %q, want linux/amd64 and linux/arm64 builds", builds)
	}
	for _, b := range builds {
		if !strings.Contains(b, "-trimpath") || !strings.Contains(b, "internal/app.Version=v9.8.7") {
			t.Errorf("build %q: not make build's flags and version stamp", b)
		}
	}
}

// TestRelease runs `make release` into a temporary directory and checks what it made: exactly
// the two binaries and SHA256SUMS, whose lines are theirs; each an ELF executable of its
// architecture, statically linked (no interpreter, no shared libraries), stripped, without
// this machine's paths (-trimpath); the one this machine can run prints the version.
func TestRelease(t *testing.T) {
	testenv.Integration(t)
	const version = "v0.0.0-releasetest"
	dist := t.TempDir()
	cmd := exec.Command("make", "release", "VERSION="+version, "DIST="+dist)
	cmd.Dir = testenv.RepoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make release: %v\n%s", err, out)
	}
	machines := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}
	var names []string
	entries, err := os.ReadDir(dist)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"SHA256SUMS", "rkms-" + version + "-linux-amd64", "rkms-" + version + "-linux-arm64"}; !slices.Equal(names, want) {
		t.Fatalf("dist holds %q, want %q", names, want)
	}

	sums, err := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(sums))
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ") // sha256sum's text mode: two spaces
		if !ok {
			t.Fatalf("SHA256SUMS line %q", sc.Text())
		}
		listed[name] = sum
	}
	if len(listed) != 2 {
		t.Errorf("SHA256SUMS lists %v, want the two binaries", listed)
	}

	for arch, machine := range machines {
		name := "rkms-" + version + "-linux-" + arch
		path := filepath.Join(dist, name)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if listed[name] != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: SHA256SUMS says %q, the file is %x", name, listed[name], sum)
		}
		f, err := elf.NewFile(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s is not ELF: %v", name, err)
		}
		if f.Machine != machine || f.Class != elf.ELFCLASS64 || f.Type != elf.ET_EXEC || f.OSABI != elf.ELFOSABI_NONE {
			t.Errorf("%s: machine %v class %v type %v, want %v ELF64 executable", name, f.Machine, f.Class, f.Type, machine)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
				t.Errorf("%s has a %v program header: not statically linked", name, p.Type)
			}
		}
		if f.Section(".symtab") != nil {
			t.Errorf("%s has a symbol table: not built with -s", name)
		}
		if bytes.Contains(b, []byte(testenv.RepoRoot(t))) {
			t.Errorf("%s holds the build directory %s: not built with -trimpath", name, testenv.RepoRoot(t))
		}
		if !bytes.Contains(b, []byte(version)) {
			t.Errorf("%s does not hold its version %s", name, version)
		}
		if arch == runtime.GOARCH && runtime.GOOS == "linux" {
			out, err := exec.Command(path, "version").CombinedOutput()
			if err != nil || !strings.Contains(string(out), version) {
				t.Errorf("%s version: %v %q, want %s", name, err, out, version)
			}
		}
		f.Close()
	}
}
