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
// admin.tls secures the first two, extproc.tls the third (TLS 1.2+, mutual TLS with
// client_ca_file; files reloaded on change, package internal/tlsconf). Limits: admin headers 16 KiB
// (431) and bodies 64 KiB (413), key API messages 64 KiB, ext_proc extproc.max_body_bytes,
// max_fields, max_concurrent_streams, max_streams_per_client, max_streams_per_tenant, the stream
// deadlines and memory_budget_bytes. At start serve sizes the body budget (when 0) and the Go
// soft limit (when GOMEMLIMIT is unset) from the container's memory limit (internal/memlimit) and
// logs them.
//
// # Audit
//
// One internal/audit logger serves the admin API, the key API and the store decorator that
// records key creation (whoever caused it); ext_proc callers are found from the Keys context
// (extproc.RequestID and the gRPC peer) only when a record is written.
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
