// Package localkms is a software [keyring.Region]: a master key per region kept in a file. It
// backs the embedded single-node mode and unit tests.
//
// NOT FOR PRODUCTION. The master key sits on the same disk as the data it protects, with no
// hardware protection, access policy, audit trail or key rotation. [Open] logs a warning saying
// so. Use keyring/awskms for anything that matters.
//
// # Key files
//
// [Open] reads `<dir>/<region>.key`: exactly 32 random bytes, mode 0600, created (atomically,
// with a link so that concurrent starters agree) on first use. A key file readable by group or
// others, or of the wrong size, is refused. Losing the file loses every data key wrapped by that
// region; other regions' copies still open them.
//
// # Ciphertext format
//
// A wrapped key is
//
//	0x01 | nonce (12 bytes) | AES-256-GCM(master, nonce, plaintext, ad) (len(plaintext)+16 bytes)
//
// where ad is the canonical encoding of the encryption context:
//
//	"rkms-localkms-v1" 0x00 | uvarint(pairs) | for each pair in ascending key order:
//	uvarint(len(key)) key uvarint(len(value)) value
//
// so a copy made for one key id or version cannot be opened as another. Vectors with their
// expected outcome are in testdata/vectors.json.
//
// # Errors
//
// Every decryption failure (bad length, unknown format byte, wrong key, wrong context, tampering)
// is reported as "authentication failed", wrapping [keyring.ErrRegionRejected]. A cancelled
// context wraps [keyring.ErrRegionUnavailable].
package localkms
