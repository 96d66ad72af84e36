// Package audit writes rkms's audit records: one per key read, creation, rotation and deletion,
// whichever API asked for it, never with key material.
//
// # Record format
//
// Records go to the process logger (log/slog, JSON by default) at level INFO with the message
// "audit" and the attribute logger=audit, so that a log pipeline can route them on that one
// attribute. Attributes, in this order:
//
//	logger        always "audit"
//	api           http (admin API), grpc (rkms.v1.KeyService), extproc (Envoy ext_proc),
//	              internal (no caller known: background work)
//	op            read, create, rotate, delete, list, rewrap, reveal
//	key_id        the key id (omitted when the caller sent an invalid one; batch records have
//	              key_ids instead)
//	version       the key version read, created or made current (omitted when none)
//	items         rewrap batch record only: the number of items in the call
//	key_ids       rewrap batch record only: the call's distinct valid key ids, the first 16
//	key_id_count  rewrap batch record only: how many distinct valid key ids the call named
//	rewrapped     rewrap batch record only: items moved to the current version
//	unchanged     rewrap batch record only: items already under the current version
//	failed        rewrap batch record only: items refused or failed (each its own error)
//	policy        reveal record only: the ext_proc policy whose response was revealed
//	fields        reveal record only: one {field, rule, action, n} per response.decrypt
//	              selector and action (selectors and counts, never values or each value's path)
//	result        ok, denied (no or wrong token, or the credential does not allow the
//	              operation on that id), invalid (bad key id), not_found,
//	              unavailable (too few KMS regions, store down, deadline), error
//	remote        the peer's address (for extproc: Envoy's address)
//	principal     the name of the admin credential the caller authenticated with (admin.credentials,
//	              or "admin" for the single admin token); omitted when it did not authenticate
//	subject       the verified client certificate's subject, when the listener uses mutual TLS
//	request_id    extproc only: the HTTP request's x-request-id (Envoy sets one)
//	error         the failure's cause, when result is not ok (never key material)
//
// Example (one line in the log):
//
//	{"time":"...","level":"INFO","msg":"audit","logger":"audit","api":"http","op":"rotate",
//	 "key_id":"tenant-a","version":2,"result":"ok","remote":"127.0.0.1:50412",
//	 "principal":"ops","subject":"CN=ops,O=example"}
//
// A rewrap call ([Logger.RecordBatch]) writes one batch record for the whole call, never with
// ciphertexts or values; result is the call's (ok once the items ran, whatever each item's
// outcome). Each key id the caller may not rewrap also gets a denied record of its own.
//
// A reveal record ([Logger.RecordReveal]) is written for each response body of a policy that sets
// response.reveal.audit: which action (full, mask:..., redact, token, ciphertext) each decrypted
// field got for the caller, and which rule chose it (README "Who sees what").
//
// A read through the admin or gRPC API creates the key when it is absent: that shows as a create
// record followed by a read record. A creation is recorded where the key record is first written
// ([Logger.WrapStore]), so it is recorded once whichever path caused it (including ext_proc
// encrypting for a new tenant), and a replica that lost the first-write race records nothing.
// ext_proc's ordinary key use (encrypting and decrypting fields) is not an audit event: the key
// never leaves rkms there.
//
// # Who
//
// The API layers put a [Who] into the request context ([WithWho]); [Logger.Record] and the store
// wrapper read it from there. [PeerFromGRPC] and [PeerFromHTTP] fill remote and subject.
package audit
