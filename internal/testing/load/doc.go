// Package load is the logic of cmd/rkms-load: load runs that measure the rkms ext_proc server
// against baselines measured in the same run, on loopback only. BENCHMARKS.md has the figures.
//
// # Processes
//
// The tool re-executes its own binary in child roles, so that each server's CPU time and memory
// are its own: RoleRKMS (the ext_proc server of package extproc with a real keyring: one
// software KMS region from keyring/localkms, the in-memory store, both behind call counters),
// RoleNoop ([Noop], which answers every message with an empty response of the matching kind)
// and RoleApp (the recorder of examples/app, which cmd/rkms-load hands to [Main]). A child prints "ready ADDR" and then answers each
// "stats" line on its stdin with a JSON [Stats] line: CPU time from getrusage(RUSAGE_SELF)
// (all threads, microsecond resolution), VmRSS and VmHWM from /proc/self/status, the Go heap
// marked live, the KMS and store call counters, and the ext_proc streams and messages the server
// received (a gRPC stream interceptor, the same in both ext_proc children). It exits when its stdin closes.
//
// # Keys
//
// The rkms child creates the keys of -keys tenants (100,000 by default) before the run, which
// caches them. By default it then releases the in-memory store, which stands in for DynamoDB
// (outside rkms in production): any later store call fails and is counted. Requests cycle
// through the tenants, so every key is used; the steady state must show 0 KMS and 0 store calls.
//
// # Runs
//
//  1. Direct: [Exchange] plays Envoy's side of one stream (request headers with the verified
//     token's payload as Envoy forwards it, a buffered JSON body with 3 tagged fields, response
//     headers, the sealed body as the response body) over loopback gRPC, with -concurrency
//     streams in flight, against the no-op server and rkms in alternating rounds.
//     Reported: streams/s, p50/p99/p99.9 and server CPU per stream.
//  2. Envoy, per route kind ([WritePath]: encrypt-only POST; [ReadPath]: decrypt-only GET of
//     records sealed before the run, see prepareRecords): client -> Envoy (envoy/ingress.yaml's
//     filters, the rig's routes, one worker) -> the app, three configurations: without the
//     ext_proc filter, ext_proc to the no-op server in the filter's 4-phase BUFFERED default,
//     ext_proc to rkms on the configuration `rkms envoy-config` renders for the rig's policies
//     (internal/envoygen): each policy route with its extproc.RouteConfigFor settings.
//     All three verify the client's bearer token (jwt_authn, internal/testing/envoytest's test
//     key; the tokens are minted before the run), so the baseline pays for verification too.
//     First each configuration's maximum throughput (closed loop, -max-workers clients,
//     alternating rounds), then each at half the no-op's maximum (open loop: latency counts
//     from the scheduled start).
//  3. The unprotected route (/healthz) through Envoy without ext_proc and the rkms
//     configuration: the ext_proc messages rkms received (0 expected) and the throughput.
//
// Each target is judged per round and on the median over rounds (report.go, print.go). With
// -slow-trace DIR the rkms child captures Go execution traces of slow streams
// (extproc.slow_trace), filed by phase ([fileTraces]); ./slowtrace reads them.
//
// Every loop is bounded in time (-duration, plus a 10 s grace for stuck requests) and in count
// (-max-requests). Any request error fails the run.
package load
