// Package blindindex computes the blind indexes of rkms policies: a truncated HMAC-SHA256 of a
// field's normalised plaintext, written next to its ciphertext so that an application can find
// records by equality without decrypting them.
//
// # Keys
//
// The index key of a (data key id, index name) pair is derived with HKDF-SHA256 ([DeriveKey])
// from the index root, a 32-byte key that rkms keeps in its keyring under the reserved id
// [RootKeyID], version [RootVersion]:
//
//	key = HKDF-SHA256(ikm = root, salt = none,
//	                  info = "rkms/v1 blind-index" || u16be(len(key id)) || key id
//	                                               || u16be(len(name)) || name, length = 32)
//
// The data key is never used: an index survives the rotation of its data key (equal plaintexts
// keep equal indexes across versions) and never helps to decrypt. Different data key ids
// (tenants) get unrelated index keys, so equal plaintexts of two tenants have unrelated indexes.
// The root is never rotated: every index would change. The reveal token keys (package
// github.com/rkms/rkms/extproc/reveal) derive from the same root under the info label
// "rkms/v1 reveal-token": an index key and a token key never coincide. Only version 1 of the root id is used,
// so an accidental rotation of [RootKeyID] changes nothing.
//
// # Values
//
// The index of a JSON string is computed on its decoded text after normalisation ([Norm]); a
// JSON number on its canonical decimal text ([CanonicalNumber]: 1e2, 100.0 and 100 are "100"),
// with the same normalisation, so the number 123456789 and the string "123456789" have the same
// index (a query parameter is always text). Other JSON values cannot be indexed ([ErrNotIndexable]).
//
//	index = base64url-nopad( HMAC-SHA256(key, normalised text)[: bits/8] )
//
// bits is 8..256, a multiple of 8 ([MinBits], [MaxBits]; [DefaultBits] 32). testdata/vectors.json
// holds test vectors: root, key id, name, bits, normalisation, input, expected index.
//
// # Failure behaviour
//
// Errors never quote a value: values are plaintext.
package blindindex
