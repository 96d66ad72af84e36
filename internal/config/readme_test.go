package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// keyPaths lists the dotted paths of every mapping key under n (list items are walked with
// "[]" in the path).
func keyPaths(n *yaml.Node, prefix string, out map[string]bool) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			keyPaths(c, prefix, out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := n.Content[i].Value
			if prefix != "" {
				p = prefix + "." + p
			}
			out[p] = true
			keyPaths(n.Content[i+1], p, out)
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			keyPaths(c, prefix+"[]", out)
		}
	}
}

// TestREADMEConfigReference: every key `rkms config print-defaults` prints is in README.md's
// configuration reference, so a new option cannot go undocumented.
func TestREADMEConfigReference(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	i := strings.Index(s, "## Configuration reference")
	if i < 0 {
		t.Fatal("README.md has no Configuration reference section")
	}
	s = s[i:]
	start := strings.Index(s, "```yaml\n")
	end := strings.Index(s[start+8:], "```")
	if start < 0 || end < 0 {
		t.Fatal("no yaml block in the Configuration reference")
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(s[start+8:start+8+end]), &doc); err != nil {
		t.Fatalf("the README's configuration reference is not YAML: %v", err)
	}
	documented := map[string]bool{}
	keyPaths(&doc, "", documented)
	def, err := DefaultsYAML()
	if err != nil {
		t.Fatal(err)
	}
	var d yaml.Node
	if err := yaml.Unmarshal(def, &d); err != nil {
		t.Fatal(err)
	}
	defaults := map[string]bool{}
	keyPaths(&d, "", defaults)
	var missing []string
	for k := range defaults {
		if !documented[k] {
			missing = append(missing, k)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("keys of print-defaults missing from README.md's configuration reference: %v", missing)
	}
}
