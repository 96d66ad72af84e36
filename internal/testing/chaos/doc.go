// Package chaos holds rkms's reliability tests: real processes, real faults, invariants checked
// afterwards. It has no code of its own beyond this documentation; everything is in its tests.
//
// # The chaos run (TestChaos)
//
// Three local-kms regions, one dynalite, two `rkms serve` processes built from ./cmd/rkms and
// sharing both, the real Envoy (envoy/ingress.yaml with its rkms cluster pointed at both
// replicas, gRPC health checked) and the recording example app (examples/app/recorder). A
// steady, paced load of POST and GET /patients requests runs through Envoy with bearer tokens
// (internal/testing/envoytest's test key; the policy's key id is tenant-{jwt:tenant}) for tenants drawn
// from a pool of existing tenants plus brand-new ones, and fields whose plaintexts are
// distinctive random tokens (SSN-<hex>, MAIL-<hex>). During the run, in turn: one region is
// killed and brought back, all regions but one are killed and brought back, DynamoDB is killed
// and brought back, one rkms replica is killed (SIGKILL) and restarted (it warms its cache from
// the ids it saved), and one region is stalled (SIGSTOP: connections accepted, never answered)
// and resumed. Afterwards it checks:
//
//  1. no plaintext of a tagged field ever reached the app (every request it received and every
//     record it stored is scanned for every token the client sent, and every stored tagged
//     field must be an rkms ciphertext);
//  2. every record the app stored decrypts afterwards, through Envoy, to exactly what the client
//     sent (read after the cache TTL, so from the store), and both replicas return the same key
//     for every key id used;
//  3. every failed request failed closed with a documented status (RELIABILITY.md lists them):
//     no success carries a ciphertext or another plaintext, no failure carries either;
//  4. every key version in the store has a copy in all three regions once repair has run;
//
// and, for stale-if-error and warm-up: during the DynamoDB outage, past the cache TTL, a cached
// tenant's key is still served (the same key) by both replicas, and the restarted replica
// warmed at least every tenant of the pool before it reported ready.
//
// # Availability per phase
//
// Beyond the shape of failures, each phase is held to what RELIABILITY.md's table promises
// (checkAvailability): existing tenants never fail, whatever the fault; with one region down or
// stalled nothing fails at all; with two of three regions down only new tenants may fail; with
// DynamoDB down only new tenants and reads of keys the serving replica does not hold; when a
// replica is killed, only the requests in flight on it (at most one per client worker); and
// failures stop within 2.5 s of the end of each fault. A failed request is excused only by a
// fault whose window its span overlaps.
//
// It prints, per phase, the requests sent, succeeded and failed (by status) and the time to
// recover after each fault, as the Markdown table in RELIABILITY.md.
//
// # The creation race (TestConcurrentCreate)
//
// Four `rkms serve` processes sharing dynalite and the three regions create the same 1,000 key
// ids at once through the admin API (GET /key): every process must return the same key bytes
// for each id, and each record must hold exactly one version.
//
// # The abuse run (TestAbuse)
//
// Issue 13's attacks, each against a fresh stack (three regions, dynalite, one `rkms serve`
// process, the real Envoy with envoy/ingress.yaml, the app) while a well-behaved client sends
// 50 POST /patients per second for an existing tenant through Envoy (encrypted on the way in,
// decrypted on the way out; each answer checked), open loop. For every attack the test asserts
// that client's success rate (>= 99 %) and p99 latency (< 50 ms), and reports the attack's
// volume, what was refused with which status, and rkms's peak resident memory (VmHWM of its
// process). The attackers use other loopback addresses (127.0.0.2, 127.0.0.3) than the good
// client, so that per-client limits can tell them apart:
//
//  1. slow bodies through Envoy: 1,100 POSTs that send a byte a second;
//  2. idle streams straight to the ext_proc port: 2,000 gRPC streams that never send;
//  3. memory floods: concurrent 1 MiB bodies straight to ext_proc (300 in the long form) and
//     concurrent 700 KB POSTs through Envoy (400), each asserting rkms's peak RSS stays under
//     extproc.memory_budget_bytes (64 MiB here) plus the documented overhead;
//  4. a tenant flood: new tenants through Envoy as fast as they go, asserting that the store
//     holds at most kms.create_burst + kms.create_rate x duration new keys;
//  5. a login flood on the admin API (bad tokens), the good client being an admin reading a key.
//
// The rkms settings of issue 13 the attacks need live in one place (issue13Settings);
// -abuse.baseline leaves them out, to measure an rkms that does not know them yet (it refuses
// to start on an unknown key). RELIABILITY.md, "Abuse runs", has the figures.
//
// # Running
//
// Both are part of `go test ./...` (skipped only under -short; a missing local-kms, dynalite or
// Envoy fails them). The short form keeps each phase at 3 s; `make chaos` runs longer phases:
//
//	go test ./internal/testing/chaos -run TestChaos -count=1 -v -args -chaos.phase=20s -chaos.rate=80
//
// The abuse run's short form (3 s per attack, reduced floods) is part of `go test ./...`; `make
// abuse` runs it long and writes bin/abuse-report.md:
//
//	go test ./internal/testing/chaos -run TestAbuse -count=1 -v -args -abuse.long -abuse.hold=20s -abuse.report=FILE
//
// Flags: -chaos.phase (time under each fault and after it), -chaos.rate (requests per second
// offered), -chaos.report FILE (also write the report there), -chaos.ids (ids in the race);
// -abuse.long, -abuse.hold, -abuse.report FILE, -abuse.baseline.
package chaos
