// Package metrics exposes rkms's Prometheus metrics.
//
// # Wiring
//
// [New] makes a [Metrics] with its own registry (no global state). The wiring code wraps each KMS
// region with [Metrics.WrapRegion] and the key store with [Metrics.WrapStore] before building the
// keyring, passes the Metrics as extproc.Options.Observer (it is also an extproc.LimitObserver),
// registers the keyring with [Metrics.WatchKeyring] and the ext_proc server with
// [Metrics.WatchExtProc], and serves [Metrics.Handler] at /metrics on the admin listener.
// Nothing here reaches into the keyring: breaker state, cache and repair figures are read from
// Keyring.RegionStatus and Keyring.Stats at scrape time.
//
// # Series
//
//	rkms_kms_request_duration_seconds{region,op}        histogram  KMS calls (op: generate_data_key, encrypt, decrypt)
//	rkms_kms_errors_total{region,op,class}             counter    failed KMS calls (class: unavailable, rejected, canceled)
//	rkms_kms_breaker_state{region,state}               gauge      1 for the breaker's current state (closed, open, half-open)
//	rkms_kms_region_healthy{region}                    gauge      1 while the breaker is closed
//	rkms_kms_breaker_opens_total{region}               counter    times the breaker opened
//	rkms_keyring_cache_hits_total                      counter    key lookups served from the cache
//	rkms_keyring_cache_misses_total                    counter    key lookups that went to the store
//	rkms_keyring_cache_keys                            gauge      key ids cached now
//	rkms_keyring_keys_created_total                    counter    records this replica created
//	rkms_keyring_repairs_pending                       gauge      key ids missing some region's copy
//	rkms_keyring_repaired_copies_total                 counter    wrapped copies added by repair
//	rkms_store_request_duration_seconds{op}            histogram  store calls (op: get, create, update, delete, ping)
//	rkms_store_errors_total{op,class}                  counter    store calls that returned an error (class below)
//	rkms_extproc_requests_total{policy,phase,outcome,status} counter ext_proc messages answered
//	rkms_extproc_processing_seconds{phase}             histogram  time to answer one ext_proc message
//	rkms_extproc_fields_total{policy,op}               counter    values encrypted or decrypted (op: encrypt, decrypt)
//	rkms_extproc_refused_total{reason}                 counter    refusals by a limit (reasons below)
//	rkms_extproc_streams_in_flight                     gauge      ext_proc streams in flight
//	rkms_extproc_memory_budget_bytes                   gauge      the body memory budget
//	rkms_extproc_memory_reserved_bytes                 gauge      bytes of the budget reserved now
//
// plus the Go runtime (go_*) and process (process_*) collectors.
//
// Store error classes: not_found, exists and conflict are normal outcomes of the keyring's
// protocol (a Get of a new id, a lost first-write race, a concurrent update); unavailable,
// invalid, corrupt, canceled and other are failures.
//
// ext_proc: phase is the message kind (request_headers, request_body, request_trailers,
// response_headers, response_body, response_trailers, unknown); outcome is continue, refused
// (status is the HTTP status rkms answered with) or protocol_error; policy is a configured
// policy's name or "none". The number of HTTP requests seen is the request_headers series.
// Refusal reasons: stream_limit, client_share, tenant_share, memory, first_message_timeout,
// idle_timeout, stream_timeout, protocol (see RELIABILITY.md, "Limits").
//
// # Cardinality and secrets
//
// Labels take values only from bounded sets: configured region and policy names, fixed
// operation, phase, outcome and class names, and HTTP status codes. Key ids are never a label,
// and no series carries key material, plaintext or ciphertext.
package metrics
