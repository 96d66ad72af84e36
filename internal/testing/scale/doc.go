// Package scale is the scale simulation of issue 19: K real `rkms serve` replicas (the real
// binary, built by the test) sharing three real local-kms regions and one real dynalite, a
// seeded tenant population, and Poisson traffic over the tenants (uniform or Zipf) spread over
// the replicas (random or round-robin) through the admin API's GET /key (a credential's read of
// a tenant key: the keyring's Lookup, the same cache as ext_proc). It counts, per replica and
// over time, the KMS Decrypt calls and store reads (each replica's /metrics:
// rkms_kms_request_duration_seconds_count{op="decrypt"} and
// rkms_store_request_duration_seconds_count{op="get"}) and the Decrypt calls the emulators log
// (local-kms prints one "Decryption called: <key ARN>" line per Decrypt), and reports them beside
// the prediction of internal/plan for the same parameters and the measured request rate.
//
// # Running it
//
//	make scale                                   # 1,000 tenants, 2 replicas, ttl 15s, 2 TTLs measured
//	make scale SCALE_ARGS='-scale.tenants=10000 -scale.replicas=4 -scale.rate=1500 -scale.ttl=30s'
//	go test -run TestScale ./internal/testing/scale -args -scale.dist=zipf:1.1
//
// `make test` runs TestScale at a small size (300 tenants, 2 replicas, ttl 5s) and fails when the
// fleet's KMS or store rate is more than 10 % off the planner, or when the emulators' Decrypt
// count differs from the replicas' own. The report (-scale.report FILE) is Markdown.
//
// # Method
//
// The tenants are created first through a separate seeding replica that is then stopped, so the
// measured replicas start with empty caches. Traffic runs for -scale.warm (default one TTL),
// whose calls are not counted (the cold start), then for -scale.measure (default two TTLs),
// sampled -scale.samples times. The prediction uses the request rate actually sent in the
// measured window. -scale.mode=hierarchical writes kms.mode, kms.hierarchical.branch_keys,
// cache.wrapped_ttl and cache.wrapped_max_keys into the replicas' configuration (direct mode
// writes none of them, so it runs on builds that do not know those keys).
package scale
