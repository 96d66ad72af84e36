// Package envoy holds the Envoy bootstrap configurations rkms ships and renders them with other
// ports.
//
// # Files
//
//   - ingress.yaml: a sidecar in front of an application. Tagged request fields are encrypted
//     before the app sees them; its responses are decrypted.
//   - egress.yaml: in front of an external API. The app's ciphertexts are decrypted on the way
//     out and the API's tagged response fields are encrypted on the way back.
//
// Both are complete, valid bootstraps with documented default ports: `envoy -c envoy/ingress.yaml`
// works as is. Every port sits on a line that ends with a "# port:NAME" marker; [Render] replaces
// the port_value on the marked lines, which is how tests run them on free ports.
//
// # Requirements these configurations meet (and rkms relies on)
//
// ext_proc fails closed (failure_mode_allow: false), buffers bodies (BUFFERED, one message per
// body), sends headers, skips trailers, allows mode_override (rkms turns body processing off for
// requests without a policy), waits 2 s per message (a cold key fetch fits; rkms bounds its own
// key work at 1.5 s), and buffers at most 1 MiB per connection. Routes name their policy with
// ExtProcPerRoute grpc_initial_metadata x-rkms-policy (matched case-insensitively), or disable
// ext_proc.
//
// # Bypass protection and local replies
//
// rkms stamps each request it processed: the answer to the last request message carries dynamic
// metadata {"rkms": {"processed": true, "policy": NAME}}. An RBAC filter after ext_proc refuses
// requests without the stamp (403), so a request that ext_proc let through unprocessed never
// reaches the app; only routes that also skip ext_proc switch the check off. Envoy's own error
// replies are {"error": "..."} JSON like rkms's, whose replies pass unchanged. README.md has the
// exact contract and what the real Envoy was seen to do.
package envoy

import (
	"embed"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

//go:embed ingress.yaml egress.yaml
var files embed.FS

// Names lists the shipped configurations.
func Names() []string { return []string{"ingress.yaml", "egress.yaml"} }

// Config returns a shipped configuration as is.
func Config(name string) ([]byte, error) {
	b, err := files.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("envoy config %q: %w", name, err)
	}
	return b, nil
}

var (
	markerRE = regexp.MustCompile(`#\s*port:([a-z_]+)\s*$`)
	portRE   = regexp.MustCompile(`port_value:\s*\d+`)
)

// Render returns cfg with the port of every line marked "# port:NAME" replaced by ports[NAME].
// Marked lines whose name is not in ports keep their default. It fails if a name in ports marks
// no line, if a marked line has no port_value, or if a port is out of range.
func Render(cfg []byte, ports map[string]int) ([]byte, error) {
	lines := strings.Split(string(cfg), "\n")
	used := map[string]bool{}
	for i, line := range lines {
		m := markerRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		port, ok := ports[m[1]]
		if !ok {
			continue
		}
		if port <= 0 || port > 65535 {
			return nil, fmt.Errorf("render envoy config: port %s=%d out of range", m[1], port)
		}
		if !portRE.MatchString(line) {
			return nil, fmt.Errorf("render envoy config: line %d is marked port:%s but has no port_value", i+1, m[1])
		}
		lines[i] = portRE.ReplaceAllString(line, "port_value: "+strconv.Itoa(port))
		used[m[1]] = true
	}
	var unused []string
	for name := range ports {
		if !used[name] {
			unused = append(unused, name)
		}
	}
	if len(unused) > 0 {
		slices.Sort(unused)
		return nil, fmt.Errorf("render envoy config: no line marked port:%s", strings.Join(unused, ", port:"))
	}
	return []byte(strings.Join(lines, "\n")), nil
}
