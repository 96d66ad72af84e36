// Package plan computes what a fleet of rkms replicas costs in KMS and key-store calls: the
// formulas behind `rkms plan` and the README's "Choosing a KMS mode" table. Nothing here calls
// AWS; it is arithmetic over the keyring's cache semantics (keyring/doc.go, "Cache and deletion
// window") and is checked against a discrete-event simulation of that cache (sim_test.go) and
// against real replicas (internal/testing/scale).
//
// # Cache semantics assumed
//
// A replica caches an opened key for cache.ttl (T) from the moment it fetched it; hits do not
// extend it. A use of a key that is not cached costs, in direct mode, one store read and one KMS
// Decrypt (in the first usable region: in the healthy case exactly one region is called). The
// cache holds at most cache.max_keys (M) ids, least recently used evicted first. The keyring's
// sweeper lets an entry live up to one sweep interval (T/100, 10 ms..1 s) past T: about 0.5 % of
// T on average, which the formulas ignore (they slightly overestimate the calls).
//
// # Worst case (no --rate)
//
// The assumption: every active tenant reaches every replica at least once per T. Then
// each replica fetches each tenant once per T, and with N tenants and R replicas
//
//	KMS Decrypt/s = store reads/s = N * R / T
//
// If N > M the cache cannot hold every tenant and the real figure is higher (up to one call per
// request for the tenants the LRU evicts): [Result.Warnings] says so; give a rate to model it.
//
// # With a request rate
//
// Requests arrive as a Poisson process of rate Λ (requests/s over the fleet); each names tenant i
// with probability p_i (uniform: 1/N; zipf:s: proportional to 1/i^s) and goes to one of the R
// replicas uniformly at random (a load balancer). So tenant i reaches a given replica as a
// Poisson process of rate λ_i = Λ p_i / R, independent of the other replicas. One (tenant,
// replica) pair's cache entry is a renewal process: a fetch, T during which every use hits, then
// the wait for the next use, which is exponential with mean 1/λ_i (memoryless). Its fetch rate is
// therefore exactly
//
//	f_i = 1 / (T + 1/λ_i)
//
// and the fraction of time it is cached is o_i = T / (T + 1/λ_i). Per replica, KMS Decrypt/s =
// store reads/s = Σ_i f_i, and the expected number of cached ids is Σ_i o_i. As λ_i T grows, f_i
// tends to 1/T: the worst case above is the limit of heavy traffic.
//
// # The LRU bound
//
// When Σ_i o_i exceeds M the LRU evicts entries before their T. The model follows Che's
// approximation for LRU caches: there is one characteristic time C such that an entry is evicted
// once it has not been used for C; C solves Σ_i o_i(C) = M (bisection). An entry fetched at 0
// then lives min(T, τ) where τ is the first time a gap of C without a use appears; its expected
// life r_i = E[min(T, τ)] = ∫_0^T q(t) dt with q(t) = P(τ > t), which solves the delay equation
//
//	q(t) = 1 (t < C),  q(C) = 1 - e^(-λC),  q'(t) = -λ e^(-λC) q(t-C) (t > C)
//
// integrated numerically ([residence]). Then f_i = 1/(r_i + 1/λ_i) and o_i = r_i/(r_i + 1/λ_i).
// Without a rate the bound is only reported.
//
// # Hierarchical mode
//
// With kms.mode hierarchical (the contract of issue 19), tenant keys are wrapped under B branch
// keys (kms.hierarchical.branch_keys); tenant i belongs to one branch (a stable hash of its id,
// so about N/B tenants each). Per replica:
//
//   - KMS Decrypt: one per branch key per T while it is used. A branch is used at rate Λ_b = the
//     sum of its tenants' λ_i, taken as Λ/(R B) (tenants spread evenly over branches), so
//     f_b = 1/(T + 1/Λ_b), about B/T per replica.
//   - Store reads: one per branch key per T (its record, read with its unwrap), plus the wrapped
//     tenant records. A tenant's wrapped record is cached for cache.wrapped_ttl (W) from its store
//     read, and read again at the first plaintext miss after it expired. Plaintext misses form the
//     renewal process above (intervals T + Exp(λ_i)), so one wrapped cycle lasts W plus the
//     residual life at W of that process: E[cycle] = E[X] (1 + m(W)) with E[X] = T + 1/λ_i and
//     m(W) the expected number of plaintext renewals in (0, W], computed exactly from
//     m(t) = Σ_{k≥1} P(k T + Gamma(k, λ_i) ≤ t) ([renewals]). When W ≤ T every plaintext miss
//     reads the store. Without a rate: N R / max(W, T) + B R / T.
//
// cache.wrapped_max_keys bounds the wrapped records cached per replica; when the expected number
// (Σ_i of each one's cached fraction) exceeds it, a warning says the store figure is too low.
//
// # Regions, months, cost and quotas
//
// KMS calls go to one region per call. With K regions (kms.regions) and replicas spread evenly
// over them, each reading its nearest region first, a region takes 1/K of the calls; when a
// region fails, or when every replica prefers the same one, one region takes them all. The
// report shows both and the headroom of each against the KMS request quota: AWS's shared
// "cryptographic operations (symmetric)" quota, per account and region, shared with every other
// use of KMS in the account, 5,500, 10,000, 50,000 or 100,000 requests/s by region
// ([DefaultKMSQuota] unless given). A month is 30 days; KMS requests cost $0.03 per 10,000
// ([KMSPricePer10k]; the free tier of 20,000 requests a month is ignored). Key creation (one
// GenerateDataKey and K-1 Encrypt per new key) is not part of the steady state.
package plan
