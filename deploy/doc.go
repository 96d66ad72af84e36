// Package deploy holds no code: its tests check the deployment artefacts that ship with rkms.
//
// # What is checked
//
//   - Dockerfile: it builds with `make build` (so the image holds the same binary as a
//     workstation build: CGO_ENABLED=0, -trimpath, the version stamp) on a distroless non-root
//     base.
//   - helm/rkms: `helm lint --strict` and `helm template` with helm/rkms/ci/test-values.yaml and
//     variants; every rendered document decodes strictly (unknown fields fail) into its
//     k8s.io/api type (cert-manager's into maps); probes, ports and the security context have the
//     values rkms needs; the rendered rkms.yaml passes config.Parse (what `rkms config check`
//     runs, with the generated certificates in place); the rendered Envoy bootstrap passes
//     `envoy --mode validate`, has envoy/ingress.yaml's HTTP filters (jwt_authn with the CI
//     values' test issuer), local replies, request id settings and routes, and passes the
//     conformance suite (internal/testing/envoytest: bypass, local replies, tokens, x-tenant-id, request
//     ids) in the real Envoy. Without the sidecar: the generated ext_proc Secrets hold a server
//     certificate for the Service's names and an Envoy client certificate from one CA, which a
//     TLS server set up like rkms accepts (and nothing without a certificate), and which
//     envoy/README.md's mTLS block uses in the real Envoy; cert-manager mode asks for the same
//     Secrets; the NetworkPolicy admits ext_proc and the key API only from the configured peers,
//     and an empty peer list is refused.
//   - ../examples/compose: secrets.sh makes certificates (chain, names, purposes, lifetime) and
//     the JWKS that compose.yaml mounts where the configurations read them; with them in place
//     the rkms configuration passes config.Parse (mutual TLS, not insecure) and the Envoy
//     bootstrap passes `envoy --mode validate`; the bootstrap is envoy/ingress.yaml with the
//     compose addresses and envoy/README.md's mTLS block and nothing else
//     (`go test ./deploy -run TestComposeEnvoyIsIngress -update` regenerates it) and passes the
//     conformance suite against a fake rkms requiring the script's client certificate; every
//     service the compose file names has its config.
//   - ../examples/kubernetes: every Envoy Gateway and Istio manifest matches the CRD of its kind
//     from pinned releases (Go modules github.com/envoyproxy/gateway and istio.io/api, read from
//     the module cache after `go mod download` checks their hash), strictly: unknown fields fail,
//     as with kubectl's strict field validation (CEL rules are not evaluated); the EnvoyFilter's
//     Envoy configuration decodes with go-control-plane, equals envoy/ingress.yaml's filters and
//     passes `envoy --mode validate`; the chart with each example's values provides the names,
//     certificates, labels and peers the manifests use.
//   - make release: the linux/amd64 and linux/arm64 binaries are built by `make build`, named
//     rkms-VERSION-linux-ARCH, listed in SHA256SUMS, static ELF files of their architecture.
//   - helm/rkms's image: repository and tag (default: the chart's appVersion), and values.yaml
//     says it is built from the Dockerfile.
//   - ../examples/terraform: the IAM policy allows exactly the encryption contexts the keyring
//     sends KMS (data keys and the breaker's probe), grants no wildcard, and the files have
//     balanced brackets (terraform itself is not available here).
//
// helm comes from `make tools` ($(go env GOPATH)/bin/helm, or RKMS_HELM); a missing helm fails
// the tests, as a missing local-kms does (they skip only under -short). secrets.sh needs openssl
// and go.
package deploy
