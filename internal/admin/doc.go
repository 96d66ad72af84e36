// Package admin serves rkms's admin HTTP API on its own listener (loopback by default).
//
// # Endpoints
//
//	GET    /key?id=ID&create=false   read the current key, never create: 200 {"id","key" (base64 DEK),"version"}, 404, 410
//	GET    /key?id=ID&version=N      read version N, never create: 200, 404 (no such key or version), 410
//	GET    /key?id=ID                get or create the current key (the original form, kept compatible): 200, 410
//	POST   /key?id=ID[&recreate=true] create explicitly: 201 {"id","key","version":1}; 409 exists; 410 deleted (recreate=true re-creates)
//	DELETE /key?id=ID                delete: the key is shredded and the id kept as deleted (a tombstone): 204, 404 absent, 410 deleted
//	POST   /key/rotate?id=ID         add a version that new encryptions use: 200 {"id","version"}, 404, 410
//	GET    /keys?limit=N&after=C&prefix=P  list ids: 200 {"ids","deleted","next"}; pass next as after until it is ""
//	POST   /v1/rewrap                move ciphertexts to the current version inside rkms: 200 {"items":[...]} (one result or error per item)
//	GET    /api/v1/...               each of the above under the original RKMS prefix
//	GET    /healthz            200 while the process runs
//	GET    /readyz             200 when the store answers and enough KMS regions are healthy, else 503
//
// It is a thin transport over package internal/keyservice, which owns the token check, the
// failed-login throttle, id validation, the per-call timeout, audit records and error classes;
// this package reads the request, calls the service and maps each class to a status in one
// table (statuses).
//
// # Query parameters
//
// The query is read raw (parseQuery): `+` stays `+`, because it is a key id character, so
// `?id=a+b` and `?id=a%2Bb` both name the id "a+b"; percent escapes are decoded (`%20` is a
// space, which no id has: 400). A parameter the call does not take, a parameter given twice, a
// bad escape or a semicolon is refused with 400 naming it. Each call is audited under its own
// operation (read, create, rotate, delete, list; list names the prefix as the key id).
//
// POST /v1/rewrap (rewrap.go) is the only endpoint that reads a body: application/json (else
// 415), up to keyservice.MaxRewrapRequestBytes (413), read after the token is checked and
// decoded strictly (decodeRewrap: exact member names, none twice, nothing after the object;
// 400). Its items fail one by one, each with its keyservice class name as code; one audit
// record covers the call.
//
// Every /key call (and its /api/v1 twin) needs `Authorization: Bearer <token>`, compared in
// constant time; otherwise 401 with WWW-Authenticate. The token is checked before the method
// and the id. Ids are validated (keyring.ValidateID): 400.
//
// # Errors
//
// Every error is JSON {"error": "..."} with a status chosen here from the key service's class:
// 400 bad id or query, 401 no or wrong token, 404 absent, 405 wrong method, 409 an explicit create
// of an existing id, 410 a deleted id (only POST /key with recreate=true brings it back), 413 a request body over
// [Options.MaxBodyBytes] (1 MiB for POST /v1/rewrap, the only endpoint that reads one), 415 a
// rewrap body that is not application/json, 429 with Retry-After (key creation rate limit,
// or an address that failed authentication too often), 499 the client went away before the call
// finished ([StatusClientClosedRequest]), 503 too few regions, store down or the call timed out,
// 500 anything else. Messages never carry internals or key material; the cause is logged
// (without key material) instead.
//
// # Audit
//
// Every /key, /key/rotate and /keys call, including those refused for a missing
// token, a throttled address or a bad id, writes one audit record through package
// internal/audit: api=http, the operation, the key id, the version, the result and the caller
// (remote address, and the client certificate's subject when the listener uses mutual TLS).
package admin
