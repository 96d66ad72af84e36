package deploy

import (
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/rkms/rkms/internal/testing/env"
)

// TestHelmChartImage: the rkms container runs image.repository at image.tag, by default the
// chart's appVersion, and values.yaml says where that image comes from (this repository's
// Dockerfile, built and pushed by the user).
func TestHelmChartImage(t *testing.T) {
	testenv.Integration(t)
	var chart struct{ AppVersion string }
	if err := yaml.Unmarshal([]byte(readRepoFile(t, "deploy/helm/rkms/Chart.yaml")), &chart); err != nil || chart.AppVersion == "" {
		t.Fatalf("Chart.yaml appVersion %q: %v", chart.AppVersion, err)
	}
	values := filepath.Join(chartDir(t), "ci", "test-values.yaml")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "ghcr.io/rkms/rkms:" + chart.AppVersion},
		{[]string{"--set", "image.tag=v1.2.3"}, "ghcr.io/rkms/rkms:v1.2.3"},
		{[]string{"--set", "image.repository=registry.example.com/team/rkms", "--set", "image.tag=v1.2.3"}, "registry.example.com/team/rkms:v1.2.3"},
	} {
		r := render(t, append([]string{"-f", values}, tc.args...)...)
		if c := container(t, r.deployment, "rkms"); c == nil || c.Image != tc.want {
			t.Errorf("%v: rkms image %v, want %s", tc.args, c, tc.want)
		}
	}
	v := readRepoFile(t, "deploy/helm/rkms/values.yaml")
	for _, want := range []string{"Dockerfile", "docker build -t REGISTRY/rkms:VERSION --build-arg VERSION=VERSION .", "docker push REGISTRY/rkms:VERSION"} {
		if !strings.Contains(v, want) {
			t.Errorf("values.yaml does not say where the image comes from (%q)", want)
		}
	}
}
