// Package keyapi serves the gRPC key API, rkms.v1.KeyService (proto/rkms/v1/keys.proto, Go code
// in api/rkms/v1), on the admin gRPC listener (admin.grpc_listen).
//
// # Behaviour
//
// It mirrors the admin HTTP API (package admin) call for call: GetKey is GET /key (get or
// create), DeleteKey is DELETE /key, RotateKey is POST /key/rotate. Every call needs the
// metadata `authorization: Bearer <token>`; the token is compared in constant time (both sides
// hashed to a fixed length first). Each call, refused ones included, writes one audit record
// through package internal/audit (api=grpc, operation, key id, version, result, peer address and,
// over mutual TLS, the client certificate's subject), never with key material.
//
// # Errors
//
// Status codes are chosen here, from the keyring's error classes: InvalidArgument (bad id),
// Unauthenticated (no or wrong token), NotFound, Unavailable (too few KMS regions, store
// unreachable, deadline exceeded), Internal (anything else). Messages are fixed per class and
// never carry internals or key material.
package keyapi
