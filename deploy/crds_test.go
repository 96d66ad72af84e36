package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/rkms/rkms/internal/testing/env"
)

// crdModule is a Go module that ships CustomResourceDefinitions, pinned by version and by its
// go.sum hash (h1:), which `go mod download` also checks against the checksum database. The
// CRDs are read from the module cache: nothing is vendored, and a new version is one edit here.
type crdModule struct {
	path, version, sum string
	files              []string // CRD files inside the module
}

var (
	// Envoy Gateway: its own CRDs and the Gateway API CRDs it installs (charts/gateway-helm).
	envoyGatewayModule = crdModule{
		path:    "github.com/envoyproxy/gateway",
		version: "v1.9.1",
		sum:     "h1:vAVp6/AlBXJ1aOhp1mxL7fNEzVEfjADUguUhm2wzxQY=",
		files: []string{
			"charts/gateway-helm/charts/crds/crds/gatewayapi-crds.yaml",
			"charts/gateway-helm/charts/crds/crds/generated/gateway.envoyproxy.io_envoyextensionpolicies.yaml",
			"charts/gateway-helm/charts/crds/crds/generated/gateway.envoyproxy.io_securitypolicies.yaml",
			"charts/gateway-helm/charts/crds/crds/generated/gateway.envoyproxy.io_clienttrafficpolicies.yaml",
			"charts/gateway-helm/charts/crds/crds/generated/gateway.envoyproxy.io_backendtrafficpolicies.yaml",
			"charts/gateway-helm/charts/crds/crds/generated/gateway.envoyproxy.io_envoyproxies.yaml",
		},
	}
	// Istio's networking and security APIs.
	istioModule = crdModule{
		path:    "istio.io/api",
		version: "v1.32.0",
		sum:     "h1:37mJvg9I0biYZAEQF+MATs4FNeCpXEIVO3LFpVb6iNM=",
		files:   []string{"kubernetes/customresourcedefinitions.gen.yaml"},
	}
)

// moduleDir returns the directory of m in the module cache, downloading it through the Go
// module proxy when it is not there yet (the only network these tests use). Under -short a
// module that is not cached skips the test (testenv.Integration); the full suite downloads it.
func moduleDir(t *testing.T, m crdModule) string {
	t.Helper()
	download := func(offline bool) (string, error) {
		cmd := exec.Command("go", "mod", "download", "-json", m.path+"@"+m.version)
		cmd.Dir = t.TempDir() // outside this module: go.mod is neither read nor changed
		cmd.Env = os.Environ()
		if offline {
			cmd.Env = append(cmd.Env, "GOPROXY=off")
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		var info struct{ Dir, Sum, Error string }
		if jerr := json.Unmarshal(out, &info); jerr == nil && info.Error != "" {
			return "", fmt.Errorf("go mod download %s@%s: %s", m.path, m.version, info.Error)
		}
		if err != nil {
			return "", fmt.Errorf("go mod download %s@%s: %w: %s%s", m.path, m.version, err, out, stderr.Bytes())
		}
		if info.Sum != m.sum {
			return "", fmt.Errorf("%s@%s has hash %s, pinned %s", m.path, m.version, info.Sum, m.sum)
		}
		return info.Dir, nil
	}
	dir, err := download(true)
	if err != nil && !strings.Contains(err.Error(), "hash") {
		testenv.Integration(t) // not cached: under -short, skip; otherwise download it
		dir, err = download(false)
	}
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// crdSet holds the spec schemas of every served version of every CRD it loaded, by
// "group/version Kind".
type crdSet struct {
	specs  map[string]*jsonschema.Schema
	source map[string]string // "group/version Kind": "module@version file"
}

var (
	crdSetsMu sync.Mutex
	crdSets   = map[string]*crdSet{}
)

// loadCRDs compiles m's CRDs (once per test binary).
func loadCRDs(t *testing.T, m crdModule) *crdSet {
	t.Helper()
	crdSetsMu.Lock()
	defer crdSetsMu.Unlock()
	if s, ok := crdSets[m.path]; ok {
		return s
	}
	dir := moduleDir(t, m)
	s := &crdSet{specs: map[string]*jsonschema.Schema{}, source: map[string]string{}}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	for _, f := range m.files {
		raw, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range splitYAML(raw) {
			var crd struct {
				Kind string
				Spec struct {
					Group string
					Names struct{ Kind string }
					// Schemas stay generic: the conversion below needs every keyword.
					Versions []struct {
						Name   string
						Served bool
						Schema struct {
							OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
						}
					}
				}
			}
			if err := yaml.Unmarshal(doc, &crd); err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			if crd.Kind != "CustomResourceDefinition" {
				continue
			}
			for _, v := range crd.Spec.Versions {
				if !v.Served {
					continue
				}
				props, _ := v.Schema.OpenAPIV3Schema["properties"].(map[string]any)
				spec, ok := props["spec"].(map[string]any)
				if !ok {
					t.Fatalf("%s: %s/%s %s has no spec schema", f, crd.Spec.Group, v.Name, crd.Spec.Names.Kind)
				}
				key := crd.Spec.Group + "/" + v.Name + " " + crd.Spec.Names.Kind
				url := "crd:///" + strings.ReplaceAll(key, " ", "/")
				if err := c.AddResource(url, strictSchema(spec)); err != nil {
					t.Fatalf("%s: %v", key, err)
				}
				sch, err := c.Compile(url)
				if err != nil {
					t.Fatalf("compile the spec schema of %s: %v", key, err)
				}
				s.specs[key] = sch
				s.source[key] = m.path + "@" + m.version + " " + f
			}
		}
	}
	crdSets[m.path] = s
	return s
}

// strictSchema turns a Kubernetes structural schema (OpenAPI v3 with x-kubernetes extensions)
// into JSON Schema that refuses what the API server refuses with strict field validation
// (kubectl's default, --validate=strict): an object schema without additionalProperties and
// without x-kubernetes-preserve-unknown-fields admits only its properties, so a misspelled field
// fails instead of being pruned. nullable becomes a "null" type, int-or-string accepts both.
// CEL rules (x-kubernetes-validations) are not evaluated (see examples/kubernetes/README.md).
func strictSchema(s map[string]any) map[string]any {
	out := make(map[string]any, len(s)+1)
	for k, v := range s {
		switch k {
		case "properties":
			props := map[string]any{}
			for name, p := range v.(map[string]any) {
				props[name] = strictSchema(p.(map[string]any))
			}
			out[k] = props
		case "items", "additionalProperties", "not":
			if m, ok := v.(map[string]any); ok {
				out[k] = strictSchema(m)
			} else {
				out[k] = v
			}
		case "allOf", "anyOf", "oneOf":
			var list []any
			for _, sub := range v.([]any) {
				list = append(list, strictSchema(sub.(map[string]any)))
			}
			out[k] = list
		default:
			out[k] = v
		}
	}
	if s["x-kubernetes-int-or-string"] == true {
		delete(out, "type")
	}
	if t, ok := out["type"].(string); ok && s["nullable"] == true {
		out["type"] = []any{t, "null"}
	}
	if s["type"] == "object" && s["additionalProperties"] == nil &&
		s["x-kubernetes-preserve-unknown-fields"] != true && s["x-kubernetes-embedded-resource"] != true {
		out["additionalProperties"] = false
	}
	return out
}

// splitYAML splits a multi-document YAML file (documents separated by "---" lines).
func splitYAML(b []byte) [][]byte {
	var docs [][]byte
	for _, d := range bytes.Split(append([]byte("\n"), b...), []byte("\n---")) {
		if len(bytes.TrimSpace(d)) > 0 {
			docs = append(docs, d)
		}
	}
	return docs
}

// validate checks one manifest (a YAML document decoded into a map) against the CRD of its
// apiVersion and kind: the version must be served, the spec must match the schema strictly,
// metadata must decode strictly into ObjectMeta, and nothing else may stand at the top level.
func (s *crdSet) validate(obj map[string]any) error {
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	key := apiVersion + " " + kind
	sch, ok := s.specs[key]
	if !ok {
		return fmt.Errorf("%s: no served CRD version for it", key)
	}
	var extra []string
	for k := range obj {
		if !slices.Contains([]string{"apiVersion", "kind", "metadata", "spec"}, k) {
			extra = append(extra, k)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return fmt.Errorf("%s: unknown top-level fields %q", key, extra)
	}
	meta, err := json.Marshal(obj["metadata"])
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(meta))
	dec.DisallowUnknownFields()
	var om metav1.ObjectMeta
	if err := dec.Decode(&om); err != nil {
		return fmt.Errorf("%s metadata: %w", key, err)
	}
	if om.Name == "" {
		return fmt.Errorf("%s: metadata.name is empty", key)
	}
	spec, ok := obj["spec"]
	if !ok {
		return fmt.Errorf("%s %s: no spec", key, om.Name)
	}
	// Through JSON: the validator wants JSON numbers and plain maps.
	j, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		return err
	}
	if err := sch.Validate(inst); err != nil {
		return fmt.Errorf("%s %s: spec does not match the CRD schema (%s):\n%v", key, om.Name, s.source[key], err)
	}
	return nil
}
