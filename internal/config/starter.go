package config

import (
	"bytes"
	"embed"
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

//go:embed starter/*.yaml
var starters embed.FS

// StarterProfiles lists the profiles of [Starter]: local, aws, kubernetes.
func StarterProfiles() []string { return []string{"local", "aws", "kubernetes"} }

// Starter returns the commented starter configuration of a profile (`rkms config init`). Each
// passes [Parse] as it is; the aws and kubernetes ones carry placeholder key ARNs marked CHANGE ME.
func Starter(profile string) ([]byte, error) {
	if !slices.Contains(StarterProfiles(), profile) {
		return nil, fmt.Errorf("unknown profile %q (want %s)", profile, strings.Join(StarterProfiles(), ", "))
	}
	return starters.ReadFile("starter/" + profile + ".yaml")
}

// DefaultsYAML returns [Default] as YAML, every key (`rkms config print-defaults`). It parses back
// to the same configuration.
func DefaultsYAML() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# rkms defaults (rkms config print-defaults): what a configuration file is laid over.\n" +
		"# A file needs only the keys it changes. Paths under data_dir follow data_dir when a file\n" +
		"# sets data_dir without them. Without --config, rkms serve runs these with log.format: text.\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(Default()); err != nil {
		return nil, fmt.Errorf("encode defaults: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode defaults: %w", err)
	}
	return b.Bytes(), nil
}
