// Package envelope seals and opens single JSON field values under one version of a data key.
//
// It is the format layer of rkms: [Seal] turns the exact JSON text of one field value (a string
// with its quotes, a number, true, false, null, an object or an array) into an ASCII string that
// is stored in its place, and [Open] gives back the identical bytes, so the value keeps its type
// and spelling. The package does no I/O and knows nothing about KMS or key storage; the caller
// passes a [Key] (key id, version and the 32-byte data key in a [secret.Key]).
//
// The normative specification is FORMAT.md beside this file; testdata/vectors.json holds test
// vectors for it.
//
// # Format
//
// The text form is "rkms:" followed by unpadded base64url of the binary form:
//
//	version(1) = 1 | mode(1) | len(key id)-1 (1) | key id | key version (uint32, big-endian) | Tink ciphertext
//
// The text needs no JSON escaping, so a sealed field is written as a JSON string:
// "ssn": "rkms:AQEK...". [IsCiphertext] is a cheap prefix test and [Parse] decodes the header
// without a key, so a caller can fetch the key version a ciphertext names before calling [Open].
//
// # Modes
//
// [Randomized] (the usual choice) is AES-256-GCM with a random 96-bit nonce through Tink's
// aead/aesgcm primitive (NO_PREFIX variant).
// [Deterministic] is AES-SIV through Tink's daead/aessiv: equal inputs give equal ciphertexts,
// which allows equality lookups on encrypted fields and reveals which values are equal.
// Each mode uses its own subkey, derived from the data key with HKDF-SHA256 under the info
// strings "rkms/v1 aes-256-gcm" and "rkms/v1 aes-siv-cmac-512", so a data key never feeds two
// algorithms. The derived primitives are cached on the key's [secret.Key] with
// [secret.Key.Derive]: only the first use of a key version pays for derivation.
//
// # Associated data
//
// The header, the field's label and an optional caller context (a tenant id, say) are
// authenticated, each length-prefixed so that no two inputs share an encoding. The label is the
// name the caller gives the field, not its path: rkms's extproc passes "ssn" for both $.ssn and
// $.items[*].ssn, so a value may move with its record between a single-record and a list
// response, but it will not open as another field. Changing the key id, version or mode in the
// header of a valid ciphertext makes it fail to open, even under a key that matches the new
// header.
//
// # Failure behaviour
//
// Nothing panics on any input. [Seal] refuses invalid input (unknown mode, bad key id, empty or
// long label, long context, empty or longer than [MaxPlaintextLen] plaintext, unusable key) with
// a descriptive error. [Open] and [Parse] reject every text that [Seal] cannot produce: errors
// wrap [ErrMalformed] (bad prefix, non-canonical base64, wrong lengths, bad key id) or
// [ErrUnsupportedVersion] (unknown format version or mode). [Open] then returns an error wrapping
// [ErrKeyMismatch] when the key passed is not the one the header names, and [ErrAuthentication]
// itself, whose message is just "authentication failed", for every cryptographic failure: wrong
// label, context or data key, or any change to the bytes. Errors never contain key material or
// plaintext.
//
// # Performance
//
// With a warm key, Seal and Open allocate only the buffer the Tink primitive returns. Seal
// builds the associated data in dst's
// spare capacity, reuses the encoded header cached for the key, and writes base64 straight into
// dst with an encoder about twice as fast as encoding/base64; Open decodes (with a strict decoder
// of its own) and decrypts into a scratch buffer from one pool shared by all keys (a pool per
// key would cost memory and GC pause time with 100,000 cached keys). The benchmarks in
// bench_test.go compare both with Tink's AES-GCM and AES-SIV called directly; BenchmarkRatio
// gives the Seal/Tink ratio measured in interleaved blocks, which holds up on a busy machine.
package envelope
