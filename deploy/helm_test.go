package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/rkms/rkms/extproc/limits"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	"github.com/rkms/rkms/envoy"
	"github.com/rkms/rkms/internal/config"
	"github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/internal/testing/envoytest"
)

// helmBin finds helm: RKMS_HELM, else where `make tools` installs it, else PATH. Missing: fail.
func helmBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("RKMS_HELM"); p != "" {
		return p
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "helm")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	t.Fatal("helm not found (run `make tools`, or set RKMS_HELM)")
	return ""
}

func chartDir(t *testing.T) string {
	return filepath.Join(testenv.RepoRoot(t), "deploy", "helm", "rkms")
}

func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helmBin(t), args...)
	// No user helm state: a fresh cache, config and data dir per test.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home+"/cache", "HELM_CONFIG_HOME="+home+"/config", "HELM_DATA_HOME="+home+"/data")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String() + errb.String(), err
	}
	return out.String(), nil
}

// rendered holds one `helm template` output, decoded strictly into the Kubernetes types
// (cert-manager's, whose Go types the module does not have, as maps).
type rendered struct {
	deployment  *appsv1.Deployment
	service     *corev1.Service
	pdb         *policyv1.PodDisruptionBudget
	secret      *corev1.Secret // the admin token's
	sa          *corev1.ServiceAccount
	netpol      *networkingv1.NetworkPolicy
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret // every Secret, by name
	certManager map[string]map[string]any // "Kind/name": the object
}

// strict decodes one YAML document into v, failing on any field v's type does not have.
func strict(doc []byte, v any) error {
	j, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func render(t *testing.T, args ...string) *rendered {
	t.Helper()
	return renderAs(t, "rel", "enc", args...)
}

// renderAs is render with another release name and namespace.
func renderAs(t *testing.T, release, namespace string, args ...string) *rendered {
	t.Helper()
	out, err := helm(t, append([]string{"template", release, chartDir(t), "--namespace", namespace}, args...)...)
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	r := &rendered{configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}, certManager: map[string]map[string]any{}}
	for _, doc := range strings.Split(out, "\n---") {
		var head struct{ APIVersion, Kind string }
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatalf("rendered YAML: %v\n%s", err, doc)
		}
		var obj any
		switch head.APIVersion + " " + head.Kind {
		case " ":
			continue // a comment-only document
		case "apps/v1 Deployment":
			r.deployment = &appsv1.Deployment{}
			obj = r.deployment
		case "v1 Service":
			r.service = &corev1.Service{}
			obj = r.service
		case "policy/v1 PodDisruptionBudget":
			r.pdb = &policyv1.PodDisruptionBudget{}
			obj = r.pdb
		case "v1 Secret":
			sec := &corev1.Secret{}
			obj = sec
			defer func() {
				r.secrets[sec.Name] = sec
				if _, ok := sec.Data["admin-token"]; ok {
					r.secret = sec
				}
			}()
		case "networking.k8s.io/v1 NetworkPolicy":
			r.netpol = &networkingv1.NetworkPolicy{}
			obj = r.netpol
		case "cert-manager.io/v1 Issuer", "cert-manager.io/v1 Certificate":
			var m map[string]any
			if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
				t.Fatalf("%s: %v", head.Kind, err)
			}
			name, _ := m["metadata"].(map[string]any)["name"].(string)
			r.certManager[head.Kind+"/"+name] = m
			continue
		case "v1 ServiceAccount":
			r.sa = &corev1.ServiceAccount{}
			obj = r.sa
		case "v1 ConfigMap":
			cm := &corev1.ConfigMap{}
			obj = cm
			defer func() { r.configMaps[cm.Name] = cm }()
		default:
			t.Fatalf("unexpected kind %s %s", head.APIVersion, head.Kind)
		}
		if err := strict([]byte(doc), obj); err != nil {
			t.Fatalf("%s does not decode strictly into its Kubernetes type: %v\n%s", head.Kind, err, doc)
		}
	}
	return r
}

func container(t *testing.T, d *appsv1.Deployment, name string) *corev1.Container {
	t.Helper()
	for i := range d.Spec.Template.Spec.Containers {
		if c := &d.Spec.Template.Spec.Containers[i]; c.Name == name {
			return c
		}
	}
	return nil
}

func ports(c *corev1.Container) map[string]int32 {
	m := map[string]int32{}
	for _, p := range c.Ports {
		m[p.Name] = p.ContainerPort
	}
	return m
}

func checkSecurity(t *testing.T, c *corev1.Container) {
	t.Helper()
	sc := c.SecurityContext
	switch {
	case sc == nil:
		t.Fatalf("%s: no securityContext", c.Name)
	case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot, sc.RunAsUser == nil || *sc.RunAsUser == 0:
		t.Errorf("%s: may run as root", c.Name)
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Errorf("%s: root filesystem writable", c.Name)
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Errorf("%s: privilege escalation allowed", c.Name)
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}):
		t.Errorf("%s: capabilities not dropped", c.Name)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("%s: resources %+v: want cpu and memory requests and a memory limit", c.Name, c.Resources)
	}
}

func TestHelmLint(t *testing.T) {
	testenv.Integration(t)
	if out, err := helm(t, "lint", "--strict", chartDir(t), "-f", filepath.Join(chartDir(t), "ci", "test-values.yaml")); err != nil {
		t.Fatalf("helm lint: %v\n%s", err, out)
	}
}

func TestHelmChart(t *testing.T) {
	testenv.Integration(t)
	values := filepath.Join(chartDir(t), "ci", "test-values.yaml")
	for _, tc := range []struct {
		name   string
		args   []string
		envoy  bool
		secret bool
	}{
		{name: "envoy sidecar", args: []string{"-f", values}, envoy: true, secret: true},
		{name: "ext_proc service, existing secret", args: []string{"-f", values, "--set", "envoy.enabled=false",
			"--set", "adminToken.value=", "--set", "adminToken.existingSecret=my-token"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := render(t, tc.args...)
			if r.deployment == nil || r.service == nil || r.pdb == nil || r.sa == nil {
				t.Fatalf("missing objects: %+v", r)
			}
			d := r.deployment
			pod := d.Spec.Template.Spec
			if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot ||
				pod.SecurityContext.SeccompProfile == nil || pod.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("pod securityContext %+v", pod.SecurityContext)
			}
			rk := container(t, d, "rkms")
			if rk == nil {
				t.Fatal("no rkms container")
			}
			checkSecurity(t, rk)
			if !slices.Equal(rk.Args, []string{"serve", "--config", "/etc/rkms/rkms.yaml"}) {
				t.Errorf("args %q", rk.Args)
			}
			wantPorts := map[string]int32{"admin": 8080, "keyapi": 8081}
			if !tc.envoy {
				wantPorts["extproc"] = 50051
			}
			if got := ports(rk); fmt.Sprint(got) != fmt.Sprint(wantPorts) {
				t.Errorf("rkms ports %v, want %v", got, wantPorts)
			}
			checkProbes(t, rk, corev1.URISchemeHTTP)

			// The Service targets ports the pod has, and exposes ext_proc only without Envoy.
			podPorts := ports(rk)
			if tc.envoy {
				ev := container(t, d, "envoy")
				if ev == nil {
					t.Fatal("no envoy container")
				}
				checkSecurity(t, ev)
				for k, v := range ports(ev) {
					podPorts[k] = v
				}
				if ev.ReadinessProbe == nil || ev.ReadinessProbe.TCPSocket == nil || ev.ReadinessProbe.TCPSocket.Port.String() != "http" {
					t.Errorf("envoy readiness probe %+v", ev.ReadinessProbe)
				}
			} else if container(t, d, "envoy") != nil {
				t.Error("envoy container without envoy.enabled")
			}
			var svcPorts []string
			for _, sp := range r.service.Spec.Ports {
				if _, ok := podPorts[sp.TargetPort.String()]; !ok {
					t.Errorf("service port %s targets %s, which the pod does not have", sp.Name, sp.TargetPort.String())
				}
				svcPorts = append(svcPorts, sp.Name)
			}
			if slices.Contains(svcPorts, "grpc-extproc") == tc.envoy {
				t.Errorf("service ports %v (envoy %v): ext_proc must be exposed exactly when there is no sidecar", svcPorts, tc.envoy)
			}

			// Selectors agree.
			sel := d.Spec.Selector.MatchLabels
			for k, v := range sel {
				if d.Spec.Template.Labels[k] != v || r.service.Spec.Selector[k] != v || r.pdb.Spec.Selector.MatchLabels[k] != v {
					t.Errorf("label %s=%s not shared by pod, service and PDB", k, v)
				}
			}
			if r.pdb.Spec.MinAvailable == nil || r.pdb.Spec.MinAvailable.IntValue() != 1 {
				t.Errorf("PDB minAvailable %v", r.pdb.Spec.MinAvailable)
			}

			// The configuration is one rkms accepts, and its paths are where the pod mounts things.
			cm := r.configMaps["rel-rkms"]
			if cm == nil {
				t.Fatalf("no rkms ConfigMap among %v", r.configMaps)
			}
			rkmsYAML, tlsDir := withChartTLS(t, r, cm.Data["rkms.yaml"])
			cfg, err := config.Parse([]byte(rkmsYAML))
			if err != nil {
				t.Fatalf("rendered rkms.yaml fails rkms config check: %v\n%s", err, cm.Data["rkms.yaml"])
			}
			// The body memory budget agrees with the container's memory limit: rkms sizes it
			// from the cgroup limit (half of it) unless the values set it, which must fit too.
			limit := rk.Resources.Limits.Memory()
			if limit.IsZero() {
				t.Error("rkms container without a memory limit: the body budget would not follow the pod's size")
			} else if budget := limits.Budget(limit.Value(), true, int(cfg.ExtProc.MaxBodyBytes)); cfg.ExtProc.MemoryBudgetBytes != 0 {
				t.Errorf("values set extproc.memory_budget_bytes %d; the chart relies on the cgroup limit (budget %d)", cfg.ExtProc.MemoryBudgetBytes, budget)
			} else if 2*budget > limit.Value() {
				t.Errorf("body budget %d is over half the memory limit %d", budget, limit.Value())
			}
			// Without the sidecar ext_proc is on the pod network: mutual TLS with the chart's
			// certificates. With it, loopback, and Envoy's own request ids trusted.
			wantTLS := config.TLS{CertFile: tlsDir + "/tls.crt", KeyFile: tlsDir + "/tls.key", ClientCAFile: tlsDir + "/ca.crt"}
			if tc.envoy {
				wantTLS = config.TLS{}
			}
			if cfg.ExtProc.TLS != wantTLS || cfg.ExtProc.Insecure || cfg.ExtProc.TrustRequestID != tc.envoy {
				t.Errorf("ext_proc tls %+v insecure %v trust_request_id %v, want %+v false %v",
					cfg.ExtProc.TLS, cfg.ExtProc.Insecure, cfg.ExtProc.TrustRequestID, wantTLS, tc.envoy)
			}
			wantExt := "0.0.0.0:50051"
			if tc.envoy {
				wantExt = "127.0.0.1:50051" // only the sidecar reaches ext_proc
			}
			if cfg.ExtProc.Listen != wantExt || cfg.Admin.Listen != "0.0.0.0:8080" || cfg.Admin.GRPCListen != "0.0.0.0:8081" ||
				len(cfg.KMS.Regions) != 3 || cfg.Store.Type != "dynamodb" || len(cfg.Policies) != 3 {
				t.Errorf("rendered config %+v", cfg)
			}
			mounts := map[string]string{}
			for _, m := range rk.VolumeMounts {
				mounts[m.Name] = m.MountPath
				if m.Name == "config" && m.SubPath != "" {
					mounts[m.Name] = filepath.Dir(m.MountPath) + "/"
				}
			}
			if mounts["tls"] != "/etc/rkms/tls" {
				t.Errorf("extraVolumeMounts not applied: %v", mounts)
			}
			tlsSecret := ""
			for _, v := range pod.Volumes {
				if v.Name == "extproc-tls" && v.Secret != nil {
					tlsSecret = v.Secret.SecretName
				}
			}
			if got := mounts["extproc-tls"] == "/etc/rkms/extproc-tls" && tlsSecret == "rel-rkms-extproc-tls" &&
				r.secrets[tlsSecret] != nil; got == tc.envoy {
				t.Errorf("ext_proc TLS Secret %q mounted at %q (rendered %v): want it exactly without the sidecar",
					tlsSecret, mounts["extproc-tls"], r.secrets[tlsSecret] != nil)
			}
			if filepath.Join(mounts["admin-token"], "admin-token") != cfg.Admin.TokenFile || mounts["data"] != cfg.DataDir {
				t.Errorf("token file %s / data dir %s not where the pod mounts them (%v)", cfg.Admin.TokenFile, cfg.DataDir, mounts)
			}
			secretName := ""
			for _, v := range pod.Volumes {
				if v.Name == "admin-token" && v.Secret != nil {
					secretName = v.Secret.SecretName
				}
			}
			switch {
			case tc.secret && (r.secret == nil || string(r.secret.Data["admin-token"]) != "ci-admin-token-0123456789" || r.secret.Name != secretName):
				t.Errorf("admin token secret %+v, mounted %q", r.secret, secretName)
			case !tc.secret && (r.secret != nil || secretName != "my-token"):
				t.Errorf("existing secret: rendered %v, mounted %q", r.secret, secretName)
			}

			ecm, ok := r.configMaps["rel-rkms-envoy"]
			if ok != tc.envoy {
				t.Fatalf("envoy ConfigMap rendered: %v, want %v", ok, tc.envoy)
			}
			if tc.envoy {
				boot := ecm.Data["envoy.yaml"]
				for _, want := range []string{"failure_mode_allow: false", "{key: x-rkms-policy, value: \"patients\"}",
					"address: 127.0.0.1, port_value: 50051", "address: 0.0.0.0, port_value: 10000"} {
					if !strings.Contains(boot, want) {
						t.Errorf("envoy bootstrap lacks %q", want)
					}
				}
				if out, err := testenv.Validate(t, withJWKS(t, boot, envoytest.JWKSFile(t))); err != nil {
					t.Errorf("envoy --mode validate: %v\n%s\n%s", err, out, boot)
				}
				if got, want := ecm.Data["jwks.json"], strings.TrimSpace(string(envoytest.TestIssuer().JWKS())); got != want {
					t.Errorf("jwks.json %s, want the JWKS of envoytest's test key (ci/test-values.yaml) %s", got, want)
				}
			}
		})
	}
}

// TestHelmChartRefuses: without the values rkms cannot run with, rendering fails with a message
// that says what to set.
func TestHelmChartRefuses(t *testing.T) {
	testenv.Integration(t)
	values := filepath.Join(chartDir(t), "ci", "test-values.yaml")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"defaults", nil, "adminToken"},
		{"no regions", []string{"--set", "adminToken.value=x0123456789abcdef"}, "config.kms.regions"},
		{"region without key", []string{"-f", values, "--set", "config.kms.regions[0].key_id="}, "needs key_id"},
		{"ext_proc TLS with the sidecar", []string{"-f", values, "--set", "config.extproc.tls.cert_file=/etc/rkms/tls/tls.crt"}, "loopback"},
		{"ext_proc on the pod network without any TLS", []string{"-f", values, "--set", "envoy.enabled=false", "--set", "extprocTLS.source=none"},
			"decrypts for whoever connects"},
		{"own ext_proc TLS and the chart's", []string{"-f", values, "--set", "envoy.enabled=false",
			"--set", "config.extproc.tls.cert_file=/etc/rkms/tls/tls.crt"}, "extprocTLS.source: none"},
		{"unknown TLS source", []string{"-f", values, "--set", "envoy.enabled=false", "--set", "extprocTLS.source=vault"}, "want helm, cert-manager or none"},
		{"sidecar without token issuer", []string{"-f", values, "--set", "envoy.jwt.issuer="}, "envoy.jwt.issuer"},
		{"sidecar without audiences", []string{"-f", values, "--set", "envoy.jwt.audiences=null"}, "envoy.jwt.audiences"},
		{"sidecar without JWKS", []string{"-f", values, "--set", "envoy.jwt.jwks="}, "envoy.jwt.jwks"},
		{"ext_proc open to everyone", []string{"-f", values, "--set", "envoy.enabled=false", "--set", "networkPolicy.extprocFrom=null"},
			"networkPolicy.extprocFrom"},
		{"key API open to everyone", []string{"-f", values, "--set", "networkPolicy.keyApiFrom=null"}, "networkPolicy.keyApiFrom"},
		{"ext_proc open to everyone (empty list)", []string{"-f", values, "--set", "envoy.enabled=false", "--set-json", "networkPolicy.extprocFrom=[]"},
			"networkPolicy.extprocFrom"},
		{"key API open to everyone (empty list)", []string{"-f", values, "--set-json", "networkPolicy.keyApiFrom=[]"}, "networkPolicy.keyApiFrom"},
		{"admin mTLS", []string{"-f", values, "--set", "config.admin.tls.cert_file=/etc/rkms/tls/tls.crt",
			"--set", "config.admin.tls.key_file=/etc/rkms/tls/tls.key", "--set", "config.admin.tls.client_ca_file=/etc/rkms/tls/ca.crt"}, "kubelet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := helm(t, append([]string{"template", "rel", chartDir(t)}, tc.args...)...)
			if err == nil || !strings.Contains(out, tc.want) {
				t.Fatalf("helm template: %v, want a failure mentioning %q\n%s", err, tc.want, out)
			}
		})
	}
}

func checkProbes(t *testing.T, rk *corev1.Container, scheme corev1.URIScheme) {
	t.Helper()
	for name, p := range map[string]*corev1.Probe{"liveness": rk.LivenessProbe, "readiness": rk.ReadinessProbe, "startup": rk.StartupProbe} {
		want := "/healthz"
		if name == "readiness" {
			want = "/readyz"
		}
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != want || p.HTTPGet.Port.String() != "admin" || p.HTTPGet.Scheme != scheme {
			t.Errorf("%s probe %+v: want %s GET %s on the admin port", name, p, scheme, want)
		}
	}
}

// TestHelmChartAdminTLS: with TLS on the admin listener the probes speak HTTPS, and the TLS
// settings reach rkms.yaml untouched beside the listeners the chart sets.
func TestHelmChartAdminTLS(t *testing.T) {
	testenv.Integration(t)
	r := render(t, "-f", filepath.Join(chartDir(t), "ci", "test-values.yaml"),
		"--set", "config.admin.tls.cert_file=/etc/rkms/tls/tls.crt", "--set", "config.admin.tls.key_file=/etc/rkms/tls/tls.key")
	checkProbes(t, container(t, r.deployment, "rkms"), corev1.URISchemeHTTPS)
	var cfg struct {
		Admin map[string]any `json:"admin"`
	}
	if err := yaml.Unmarshal([]byte(r.configMaps["rel-rkms"].Data["rkms.yaml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	tls, _ := cfg.Admin["tls"].(map[string]any)
	if tls["cert_file"] != "/etc/rkms/tls/tls.crt" || cfg.Admin["listen"] != "0.0.0.0:8080" {
		t.Errorf("admin section %v", cfg.Admin)
	}
}

// withChartTLS returns the rendered rkms.yaml with the files of the ext_proc TLS Secret (when
// the chart rendered one) written to a temporary directory dir and named instead of the mount
// (/etc/rkms/extproc-tls): rkms config check loads them, as rkms serve would.
func withChartTLS(t *testing.T, r *rendered, rkmsYAML string) (out, dir string) {
	t.Helper()
	sec := r.secrets["rel-rkms-extproc-tls"]
	if sec == nil {
		return rkmsYAML, ""
	}
	dir = t.TempDir()
	for name, b := range sec.Data {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return strings.ReplaceAll(rkmsYAML, "/etc/rkms/extproc-tls/", dir+"/"), dir
}

// withJWKS renders the chart's Envoy bootstrap with its JWKS at path (the "# file:jwks" line).
func withJWKS(t testing.TB, boot, path string) string {
	t.Helper()
	out, err := envoy.RenderFiles([]byte(boot), map[string]string{"jwks": path})
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}
