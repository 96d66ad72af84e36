// Package keyservice is the key service behind rkms's two key APIs: the admin HTTP API (package
// internal/admin) and the gRPC key API (package internal/keyapi). Those are thin transports: they
// read their input, call the service and map its error classes to their statuses.
//
// # Operations
//
// [Service.Authenticate] turns a [Caller] (address, client certificate subject, authorization
// value) into a [Session]; only a Session reaches the key operations [Session.Get] (get or
// create), [Session.Rotate] and [Session.Delete]. [Service.Ready] needs no session.
//
// # Rules it owns
//
//   - The bearer token: `Bearer <token>` (scheme case-insensitive), compared in constant time on
//     SHA-256 digests.
//   - Failed-login throttling per address (package internal/authlimit, one throttle for both
//     transports): a throttled address is refused whatever token it carries.
//   - Key id validation ([keyring.ValidateID]) and the per-call timeout ([Options.Timeout]).
//   - Audit records (package internal/audit): one per key operation, refusals included, never
//     key material.
//
// # Errors
//
// Every error is an [*Error] whose [Class] is one of a closed set; [Classify] derives it from
// the keyring's classification ([keyring.ClassOf]). Its message is fixed per class and safe to
// show; internal causes are logged here, once.
package keyservice
