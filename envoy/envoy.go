// Package envoy holds the Envoy bootstrap configurations rkms ships and renders them with other
// ports and file paths.
//
// # Files
//
//   - ingress.yaml: a sidecar in front of an application. Tagged request fields are encrypted
//     before the app sees them; its responses are decrypted.
//   - egress.yaml: in front of an external API. The app's ciphertexts are decrypted on the way
//     out and the API's tagged response fields are encrypted on the way back.
//
// Both are complete, valid bootstraps with documented default ports: `envoy -c envoy/ingress.yaml`
// works as is once /etc/envoy/jwks.json holds the token issuer's keys. Every port sits on a line
// that ends with a "# port:NAME" marker and every file path on one that ends with "# file:NAME";
// [Render] replaces the port_value and [RenderFiles] the filename on the marked lines, which is
// how tests run them on free ports with their own files.
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
// # Who the caller is
//
// ingress.yaml removes a client's x-tenant-id, verifies bearer tokens with jwt_authn before
// ext_proc (a local JWKS, "# file:jwks"; policy routes require one) and forwards the verified
// payload to rkms as metadata_context.filter_metadata["envoy.filters.http.jwt_authn"]
// ["jwt_payload"], the source of {jwt:CLAIM} key ids. Both files send the client certificate's
// first URI and DNS SANs as ext_proc attributes ({peer:uri_san}, {peer:dns_san}) and replace
// every client's x-request-id, so that rkms may trust Envoy's (extproc.trust_request_id).
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
	markerRE   = regexp.MustCompile(`#\s*port:([a-z_]+)\s*$`)
	portRE     = regexp.MustCompile(`port_value:\s*\d+`)
	fileMarkRE = regexp.MustCompile(`#\s*file:([a-z_]+)\s*$`)
	// A filename value: a double-quoted YAML string, or a plain one up to a space, comma or brace.
	fileRE = regexp.MustCompile(`filename:\s*("(?:[^"\\]|\\.)*"|[^\s#{},"]+)`)
)

// Render returns cfg with the port of every line marked "# port:NAME" replaced by ports[NAME].
// Marked lines whose name is not in ports keep their default. It fails if a name in ports marks
// no line, if a marked line has no port_value, or if a port is out of range.
func Render(cfg []byte, ports map[string]int) ([]byte, error) {
	return render(cfg, "port", markerRE, ports, func(line string, port int) (string, error) {
		if port <= 0 || port > 65535 {
			return "", fmt.Errorf("out of range")
		}
		if !portRE.MatchString(line) {
			return "", fmt.Errorf("no port_value")
		}
		return portRE.ReplaceAllString(line, "port_value: "+strconv.Itoa(port)), nil
	})
}

// RenderFiles returns cfg with the filename of every line marked "# file:NAME" replaced by
// files[NAME] (written as a double-quoted YAML string). Marked lines whose name is not in files
// keep their default. It fails if a name in files marks no line, if a marked line has no
// filename, or if a path is empty or not absolute (Envoy resolves a relative one against its
// working directory, which is rarely what was meant).
//
// The shipped files mark the JSON Web Key Set that jwt_authn verifies tokens with:
// "# file:jwks" (default /etc/envoy/jwks.json).
func RenderFiles(cfg []byte, files map[string]string) ([]byte, error) {
	return render(cfg, "file", fileMarkRE, files, func(line, path string) (string, error) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, "\n\r") {
			return "", fmt.Errorf("%q is not an absolute path", path)
		}
		if !fileRE.MatchString(line) {
			return "", fmt.Errorf("no filename")
		}
		q := strconv.Quote(path)
		return fileRE.ReplaceAllLiteralString(line, "filename: "+q), nil
	})
}

// render replaces, on every line that marker marks with a name in values, what replace returns.
func render[V any](cfg []byte, kind string, marker *regexp.Regexp, values map[string]V, replace func(line string, v V) (string, error)) ([]byte, error) {
	lines := strings.Split(string(cfg), "\n")
	used := map[string]bool{}
	for i, line := range lines {
		m := marker.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		v, ok := values[m[1]]
		if !ok {
			continue
		}
		out, err := replace(line, v)
		if err != nil {
			return nil, fmt.Errorf("render envoy config: line %d (%s:%s): %w", i+1, kind, m[1], err)
		}
		lines[i] = out
		used[m[1]] = true
	}
	var unused []string
	for name := range values {
		if !used[name] {
			unused = append(unused, name)
		}
	}
	if len(unused) > 0 {
		slices.Sort(unused)
		return nil, fmt.Errorf("render envoy config: no line marked %s:%s", kind, strings.Join(unused, ", "+kind+":"))
	}
	return []byte(strings.Join(lines, "\n")), nil
}
