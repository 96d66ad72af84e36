// Package access is the permission model of rkms's key APIs: the operation names a credential
// may be allowed ([Operations]), the rule for a credential's name ([CheckName]) and a
// [Principal] (an authenticated caller's name, allowed operations and key id prefixes) with the
// one check every key operation makes ([Principal.Allows]).
//
// It has no dependencies so that both the config loader (which validates `admin.credentials`)
// and the key service (which enforces them) use the same rule.
//
// # Operations
//
//   - read: get an existing key's bytes (GET /key, GetKey).
//   - create: create a key that does not exist yet (GET /key on an absent id; it also needs read).
//   - rotate: add a version (POST /key/rotate, RotateKey).
//   - delete: remove every version (DELETE /key, DeleteKey).
//   - list: list key ids (ids outside the principal's prefixes are not shown: [Principal.Covers]).
//   - rewrap: re-encrypt ciphertexts under the current version of their key id inside rkms
//     (POST /v1/rewrap, Rewrap); the key and the plaintext never leave rkms. A credential with
//     read can fetch the raw key and do the same itself: rewrap is the narrower right to give a
//     migration job.
//
// # Id prefixes
//
// A principal with id prefixes may only act on ids that start with one of them (plain string
// prefixes, case-sensitive); without any it may act on every id.
package access
