// Package deploy holds no code: its tests check the deployment artefacts that ship with rkms.
//
// # What is checked
//
//   - Dockerfile: it builds with `make build` (so the image holds the same binary as a
//     workstation build: CGO_ENABLED=0, -trimpath, the version stamp) on a distroless non-root
//     base.
//   - helm/rkms: `helm lint --strict` and `helm template` with helm/rkms/ci/test-values.yaml and
//     variants; every rendered document decodes strictly (unknown fields fail) into its
//     k8s.io/api type; probes, ports and the security context have the values rkms needs; the
//     rendered rkms.yaml passes config.Parse (what `rkms config check` runs) and the rendered
//     Envoy bootstrap passes `envoy --mode validate`, has envoy/ingress.yaml's HTTP filters,
//     local replies and health route, and passes the bypass conformance suite
//     (internal/envoytest) in the real Envoy.
//   - ../examples/compose: the rkms configuration passes config.Parse, the Envoy bootstrap
//     passes `envoy --mode validate`, is envoy/ingress.yaml with the compose addresses and
//     nothing else (`go test ./deploy -run TestComposeEnvoyIsIngress -update` regenerates it)
//     and passes the bypass conformance suite; every service the compose file names has its
//     config.
//   - ../examples/terraform: the IAM policy allows exactly the encryption contexts the keyring
//     sends KMS (data keys and the breaker's probe), grants no wildcard, and the files have
//     balanced brackets (terraform itself is not available here).
//
// helm comes from `make tools` ($(go env GOPATH)/bin/helm, or RKMS_HELM); a missing helm fails
// the tests, as a missing local-kms does (they skip only under -short).
package deploy
