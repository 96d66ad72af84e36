// Package keyapi serves the gRPC key API, rkms.v1.KeyService (proto/rkms/v1/keys.proto, Go code
// in api/rkms/v1), on the admin gRPC listener (admin.grpc_listen).
//
// # Behaviour
//
// It mirrors the admin HTTP API (package admin) call for call: GetKey is GET /key (get or
// create), ReadKey is GET /key with create=false or version=N (never creates), CreateKey is
// POST /key (recreate=true for a deleted id), ListKeys is GET /keys, DeleteKey is DELETE /key,
// RotateKey is POST /key/rotate. Both are thin transports
// over package internal/keyservice, which owns the token check, the failed-login throttle, id
// validation, the per-call timeout, audit records (api=grpc here) and error classes. Every call
// needs the metadata `authorization: Bearer <token>` (exactly one value), checked before the id.
//
// # Errors
//
// Status codes are chosen here, in one table (classCodes), from the key service's classes:
// InvalidArgument (bad id, page size or token), Unauthenticated (no or wrong token), NotFound,
// AlreadyExists (CreateKey of an existing id), FailedPrecondition (a deleted id), ResourceExhausted
// (key creation rate limit, with "retry after" in the message; or an address that failed
// authentication too often), Unavailable (too few KMS regions, store unreachable, deadline
// exceeded), Canceled (the client went away), Internal (anything else). Messages are fixed per
// class and never carry internals or key material.
package keyapi
