// Package keyservice is the key service behind rkms's two key APIs: the admin HTTP API (package
// internal/admin) and the gRPC key API (package internal/keyapi). Those are thin transports: they
// read their input, call the service and map its error classes to their statuses.
//
// # Operations
//
// [Service.Authenticate] turns a [Caller] (address, client certificate identities, authorization
// value) into a [Session] carrying the caller's principal (package internal/access: a name, the
// operations it may do, the key id prefixes it may do them on); only a Session reaches the key
// operations [Session.Get] (get, or create when absent), [Session.Rotate] and [Session.Delete].
// [Service.Ready] needs no session.
//
// [Session.Rewrap] moves ciphertexts (package envelope) to the current version of their key id
// inside rkms: each item is opened under the version its header names and sealed again under
// the current one with the same mode, label and context; neither the key nor the plaintext
// leaves the call. Items fail one by one ([RewrapResult.Err]), so a bulk run continues past a
// bad record; only a batch over [MaxRewrapItems] fails whole. It needs the rewrap permission
// per key id and writes one audit record per call.
//
// # Rules it owns
//
//   - The credentials ([Options.Credentials], plus [Options.Token], the single admin token, as
//     the credential "admin" with every operation): a bearer token `Bearer <token>` (scheme
//     case-insensitive), compared in constant time on SHA-256 digests with every credential's
//     token, without an early exit; or, when no authorization value is presented, a URI or DNS
//     SAN of the client certificate that a mutual-TLS listener verified ([TLSIdentities]).
//   - Permissions: every key operation checks that the principal allows it on that id; a
//     refusal is Forbidden and audited as denied under the principal's name. A get of an absent
//     key needs create as well as read; without create the key is only looked up.
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
