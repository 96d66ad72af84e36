// Package app is the rkms command: it parses the command line, loads the configuration, wires the
// keyring, the store, the KMS regions, the ext_proc server, the admin API (with /metrics) and the
// gRPC key API together, and runs them until it is told to stop. cmd/rkms only calls [Main].
//
// # Listeners
//
//	admin.listen       admin HTTP API: /key, /healthz, /readyz, and /metrics (no token)
//	admin.grpc_listen  gRPC key API rkms.v1.KeyService (same token); "" disables it
//	extproc.listen     Envoy ext_proc (gRPC) and grpc.health.v1
//
// Metrics (package internal/metrics) wrap each KMS region and the store in measuring decorators
// before the keyring is built, and read the keyring's own counters at scrape time.
//
// # Commands
//
//	rkms serve [--config FILE]   run (embedded defaults without --config)
//	rkms config check FILE       report every problem in FILE, with its line
//	rkms version                 print the version
package app
