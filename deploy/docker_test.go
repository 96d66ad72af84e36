package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rkms/rkms/internal/testing/env"
)

func readRepoFile(t testing.TB, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// makeRecipe returns the recipe lines of a Makefile target.
func makeRecipe(t *testing.T, makefile, target string) []string {
	t.Helper()
	var out []string
	in := false
	for _, line := range strings.Split(makefile, "\n") {
		switch {
		case strings.HasPrefix(line, target+":"):
			in = true
		case in && strings.HasPrefix(line, "\t"):
			out = append(out, strings.TrimSpace(line))
		case in:
			return out
		}
	}
	if !in {
		t.Fatalf("Makefile has no %s target", target)
	}
	return out
}

// TestDockerfileBuildsLikeMake: the image's binary is built by `make build`, and `make build`
// makes a static, path-free binary with the version stamped.
func TestDockerfileBuildsLikeMake(t *testing.T) {
	df := readRepoFile(t, "Dockerfile")
	mk := readRepoFile(t, "Makefile")

	var build []string // the go build lines, with the Makefile's one LDFLAGS expanded
	ldflags := regexp.MustCompile(`(?m)^LDFLAGS\s*:=\s*(.*)$`).FindStringSubmatch(mk)
	for _, line := range makeRecipe(t, mk, "build") {
		if !strings.HasPrefix(line, "@echo ") && ldflags != nil {
			build = append(build, strings.ReplaceAll(line, "$(LDFLAGS)", ldflags[1]))
		}
	}
	if len(build) != 1 {
		t.Fatalf("make build recipe %q: want one go build line (and LDFLAGS defined)", build)
	}
	for _, want := range []string{"CGO_ENABLED=0", "$(GO) build", "-trimpath", "-ldflags", "internal/app.Version=$(VERSION)", "-o $(BIN)", "./cmd/rkms"} {
		if !strings.Contains(build[0], want) {
			t.Errorf("make build recipe %q lacks %q", build[0], want)
		}
	}

	runs := regexp.MustCompile(`(?m)^RUN (.*)$`).FindAllStringSubmatch(df, -1)
	var builds []string
	for _, r := range runs {
		if strings.Contains(r[1], "go build") {
			t.Errorf("Dockerfile runs its own go build (%q): use make build", r[1])
		}
		if strings.Contains(r[1], "make build") {
			builds = append(builds, r[1])
		}
	}
	if len(builds) != 1 || !strings.HasPrefix(builds[0], "make build VERSION=${VERSION}") {
		t.Fatalf("Dockerfile build steps %q: want one `make build VERSION=${VERSION}`", builds)
	}
	for _, want := range []string{
		"FROM golang:${GO_VERSION}-bookworm AS build",
		"FROM gcr.io/distroless/static-debian12:nonroot",
		"COPY --from=build /src/bin/rkms /usr/local/bin/rkms",
		"USER 65532:65532",
		`ENTRYPOINT ["/usr/local/bin/rkms"]`,
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	// The builder's Go is the module's Go.
	goVersion := regexp.MustCompile(`(?m)^go (\S+)$`).FindStringSubmatch(readRepoFile(t, "go.mod"))
	if goVersion == nil || !strings.Contains(df, "ARG GO_VERSION="+goVersion[1]) {
		t.Errorf("Dockerfile GO_VERSION does not match go.mod's go %v", goVersion)
	}
	// The binary path in `make build` is where the Dockerfile copies it from.
	if !regexp.MustCompile(`(?m)^BIN\s*:?=\s*bin/rkms$`).MatchString(mk) {
		t.Error("Makefile BIN is not bin/rkms (the Dockerfile copies /src/bin/rkms)")
	}
}
