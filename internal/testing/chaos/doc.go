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
// # Running
//
// Both are part of `go test ./...` (skipped only under -short; a missing local-kms, dynalite or
// Envoy fails them). The short form keeps each phase at 3 s; `make chaos` runs longer phases:
//
//	go test ./internal/testing/chaos -run TestChaos -count=1 -v -args -chaos.phase=20s -chaos.rate=80
//
// Flags: -chaos.phase (time under each fault and after it), -chaos.rate (requests per second
// offered), -chaos.report FILE (also write the report there), -chaos.ids (ids in the race).
package chaos
