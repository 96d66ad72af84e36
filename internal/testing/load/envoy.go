package load

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/internal/testing/envoytest"
)

// Envoy configurations compared through the real Envoy.
const (
	EnvoyNoFilter = "no-ext_proc"   // ingress.yaml without the ext_proc filter and its stamp check
	EnvoyNoop     = "ext_proc-noop" // ingress.yaml, ext_proc to the no-op server
	EnvoyRKMS     = "ext_proc-rkms" // ingress.yaml, ext_proc to rkms with warm keys
)

// envoyConfig renders the rig's Envoy configuration on the given ports ([generated]: what
// `rkms envoy-config` prints for the rig's policies), verifying tokens with the JWKS file jwks.
// perRoute keeps each policy route's settings (the rkms configuration); without it every route
// that reaches ext_proc gets the filter's default 4-phase BUFFERED mode (the no-op
// configuration). Without a filter port (extproc 0) the ext_proc filter, the rbac filter that
// checks rkms's stamp, and their per-route settings are removed. Every configuration keeps
// jwt_authn, so that the baseline pays for token verification as the others do.
func envoyConfig(admin, listener, app, extproc int, jwks string, perRoute bool) ([]byte, error) {
	port := extproc
	if port == 0 {
		port = 1 // rendered, then removed with the filter
	}
	out, err := generated(admin, listener, app, port, jwks)
	if err == nil && !perRoute {
		out, err = withoutOverrides(out)
	}
	if err != nil || extproc != 0 {
		return out, err
	}
	return WithoutExtProc(out)
}

// WithoutExtProc removes the ext_proc and rbac HTTP filters (without ext_proc nothing is stamped,
// so the stamp check would refuse every request) and their typed_per_filter_config entries from
// the first listener's HTTP connection manager.
func WithoutExtProc(cfg []byte) ([]byte, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(cfg, &doc); err != nil {
		return nil, fmt.Errorf("parse envoy config: %w", err)
	}
	hcm, err := dig(doc, "static_resources", "listeners", 0, "filter_chains", 0, "filters", 0, "typed_config")
	if err != nil {
		return nil, err
	}
	m := hcm.(map[string]any)
	var kept []any
	for _, f := range m["http_filters"].([]any) {
		if n := f.(map[string]any)["name"]; n != "envoy.filters.http.ext_proc" && n != "envoy.filters.http.rbac" {
			kept = append(kept, f)
		}
	}
	m["http_filters"] = kept
	hosts, err := dig(m, "route_config", "virtual_hosts")
	if err != nil {
		return nil, err
	}
	for _, h := range hosts.([]any) {
		for _, r := range h.(map[string]any)["routes"].([]any) {
			if pf, ok := r.(map[string]any)["typed_per_filter_config"].(map[string]any); ok {
				delete(pf, "envoy.filters.http.ext_proc")
				delete(pf, "envoy.filters.http.rbac")
			}
		}
	}
	return yaml.Marshal(doc)
}

func dig(v any, path ...any) (any, error) {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok || m[k] == nil {
				return nil, fmt.Errorf("envoy config: no %q", k)
			}
			v = m[k]
		case int:
			s, ok := v.([]any)
			if !ok || len(s) <= k {
				return nil, fmt.Errorf("envoy config: no element %d", k)
			}
			v = s[k]
		}
	}
	return v, nil
}

// envoyProc is one running Envoy.
type envoyProc struct {
	envoy *testenv.Envoy
	dir   string
	base  string // http://127.0.0.1:LISTENER
}

// EnvoyBinary finds envoy: the given path, else $RKMS_ENVOY, else .tools/venv/bin/envoy, else PATH.
func EnvoyBinary(path string) (string, error) {
	for _, p := range []string{path, os.Getenv("RKMS_ENVOY"), filepath.Join(".tools", "venv", "bin", "envoy")} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return filepath.Abs(p) // Envoy runs in its own directory
		}
	}
	p, err := exec.LookPath("envoy")
	if err != nil {
		return "", fmt.Errorf("envoy not found (give -envoy, set RKMS_ENVOY or run make tools): %w", err)
	}
	return p, nil
}

// startEnvoy runs bin (testenv.LaunchEnvoy: one worker thread) on a configuration pointing at
// app and extproc (0: no ext_proc filter; perRoute: see [envoyConfig]) and waits up to 60 s for its admin /ready.
func startEnvoy(ctx context.Context, bin string, app, extproc int, perRoute bool, logs io.Writer) (*envoyProc, error) {
	ports, err := testenv.FreePorts(2)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "rkms-load-envoy-")
	if err != nil {
		return nil, err
	}
	jwks, err := envoytest.WriteJWKS(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cfg, err := envoyConfig(ports[0], ports[1], app, extproc, jwks, perRoute)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	e, err := testenv.LaunchEnvoy(ctx, bin, dir, string(cfg), logs, 60*time.Second)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &envoyProc{envoy: e, dir: dir, base: fmt.Sprintf("http://127.0.0.1:%d", ports[1])}, nil
}

func (e *envoyProc) stop() {
	e.envoy.Stop()
	os.RemoveAll(e.dir)
}
