// Package envoytest runs an Envoy configuration shipped with rkms in the real Envoy, with a fake
// rkms behind it, and checks the two promises every shipped configuration makes:
//
//   - Bypass protection: a request that rkms did not process never reaches the app. rkms stamps
//     each request it processed with dynamic metadata; a filter after ext_proc refuses requests
//     without the stamp, even when ext_proc lets a request pass unprocessed
//     (failure_mode_allow: true and rkms down, a gRPC error, a route that disables ext_proc).
//   - Local replies: Envoy's own error replies (413, 500, 503, the 403 of the stamp check, ...)
//     are JSON like rkms's, and rkms's own replies reach the client byte for byte.
//
// [Run] is the conformance suite: envoy/ runs it on ingress.yaml, deploy/ on the Helm chart's and
// the compose example's configurations. Each caller supplies a [Suite.Render] that puts its
// configuration on loopback ports. [FakeRkms] speaks exactly the ext_proc contract of
// envoy/README.md ("Bypass protection"), so that the real rkms, which meets the same contract,
// plugs in unchanged.
//
// TestIngressMessageTimeout in envoy/ uses [Stall] (it costs the 2 s of message_timeout, so the
// suite does not). Everything listens on 127.0.0.1 and stops at test cleanup. Callers call
// [testenv.Integration] first, like every test that needs Envoy.
package envoytest
