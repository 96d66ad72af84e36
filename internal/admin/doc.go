// Package admin serves rkms's admin HTTP API on its own listener (loopback by default).
//
// # Endpoints
//
//	GET    /key?id=ID          get or create the current key: 200 {"id","key" (base64 DEK),"version"}
//	GET    /api/v1/key?id=ID   the same, the original RKMS path
//	DELETE /key?id=ID          delete every version (crypto-shredding): 204, or 404 when absent
//	POST   /key/rotate?id=ID   add a version that new encryptions use: 200 {"id","version"}
//	GET    /healthz            200 while the process runs
//	GET    /readyz             200 when the store answers and enough KMS regions are healthy, else 503
//
// It is a thin transport over package internal/keyservice, which owns the token check, the
// failed-login throttle, id validation, the per-call timeout, audit records and error classes;
// this package reads the request, calls the service and maps each class to a status in one
// table (statuses).
//
// Every /key call (and its /api/v1 twin) needs `Authorization: Bearer <token>`, compared in
// constant time; otherwise 401 with WWW-Authenticate. The token is checked before the method
// and the id. Ids are validated (keyring.ValidateID): 400.
//
// # Errors
//
// Every error is JSON {"error": "..."} with a status chosen here from the key service's class:
// 400 bad id, 401 no or wrong token, 404 absent, 405 wrong method, 413 a request body over
// [Options.MaxBodyBytes] (no endpoint reads one), 429 with Retry-After (key creation rate limit,
// or an address that failed authentication too often), 499 the client went away before the call
// finished ([StatusClientClosedRequest]), 503 too few regions, store down or the call timed out,
// 500 anything else. Messages never carry internals or key material; the cause is logged
// (without key material) instead.
//
// # Audit
//
// Every /key and /key/rotate call (GET, DELETE, POST), including those refused for a missing
// token, a throttled address or a bad id, writes one audit record through package
// internal/audit: api=http, the operation, the key id, the version, the result and the caller
// (remote address, and the client certificate's subject when the listener uses mutual TLS).
package admin
