// Package config loads and checks the rkms configuration file.
//
// # Sources
//
// One YAML file (`rkms serve --config FILE`). Without a file, [Default] gives the embedded
// defaults: data in ./rkms-data, an embedded single-file store, three local software KMS regions,
// the admin API on 127.0.0.1:8080 (with /metrics), the gRPC key API on 127.0.0.1:8081 and
// ext_proc on 127.0.0.1:50051. A file is laid over those defaults, so it only needs the keys it
// changes; [Dev] is [Default] with text logs, for `rkms serve` without a file. Every path that
// defaults under data_dir (admin.token_file, store.embedded.path, cache.warmup.file, the local KMS
// keys of [Config.LocalKMSDir]) follows a data_dir set in the file unless the file names it.
// [Starter] gives the commented starter files of `rkms config init`, [DefaultsYAML] the defaults as
// a file. Secrets may come from the environment:
// RKMS_ADMIN_TOKEN overrides admin.token_file. AWS credentials come from the SDK's standard chain
// and are never part of this file.
//
// # Outages and restarts
//
// cache.max_stale (default 1h; 0 disables) lets cached keys keep serving past cache.ttl while
// every KMS region or the store is unreachable: an hour covers a long regional outage, and the
// cost, a key deleted or rotated elsewhere staying in use for up to ttl+max_stale on a replica
// that cannot see the store, only applies during such an outage. cache.warmup (off by default:
// it writes a file into data_dir) saves the ids of the most recently used keys and unwraps them
// at the next start before the replica reports ready. kms.breaker_threshold,
// kms.breaker_cooldown and kms.repair_interval tune how fast a failed region is skipped, probed
// and its missing key copies repaired.
//
// # TLS
//
// admin.tls (the admin HTTP API and the gRPC key API) and extproc.tls take {cert_file, key_file,
// client_ca_file} ([TLS]); client_ca_file makes client certificates mandatory (mutual TLS). The
// files must exist and parse when the configuration is checked.
//
// # Checking
//
// [Load] and [Check] report every problem at once, each with the line of the file it concerns
// (unknown keys, wrong types, bad values, inconsistent settings), as a [Problems] error. The file
// is walked as a yaml.Node against the Config type rather than decoded strictly, so that the
// decoder's first error hides nothing: an unknown key is reported with its key path and the
// nearest known key at its level (edit distance), a value of the wrong type in words, and both
// are removed before the rest is decoded and checked (the value keeps its default, and no second
// problem is reported for it). A policy problem points at the line of the key it is about.
//
// # Owners
//
// A default or a limit that a library package also applies is read from that package, never
// retyped: [Default] takes keyring.Default* and limits.Default*, and the check calls
// keyring.CheckMinRegions and limits.Check* (which NewServer applies too), putting the line and
// key in front of the owner's message. What is the service's own choice (addresses, data dir,
// the shorter KMS and DynamoDB call timeouts, max_stale on, the warm-up) is a Default* constant
// here. The check compiles the policies once and keeps the set ([Config.PolicySet]) for the
// server.
package config
