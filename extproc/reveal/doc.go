// Package reveal applies the reveal actions of rkms policies to decrypted response fields:
// what a caller sees of a value it may read (full, masked, a token, redacted, the ciphertext).
// Which action a field gets is decided by the policy (package policy, response.reveal); this
// package parses the actions ([Parse]) and computes their output.
//
// # Actions
//
//	full                the decrypted value
//	mask:keep(P,S)      a string with its first P and last S code points kept, every other
//	                    code point replaced by '*'; P and S are 0..64. A value of P+S code points
//	                    or fewer is masked whole: a mask never reveals the whole value.
//	mask:last4          mask:keep(0,4)
//	mask:first6last4    mask:keep(6,4) (card numbers: issuer number and last four)
//	mask:email          the value split at its last '@': the first code point of the local
//	                    part, the '@' and the whole domain kept, the rest of the local part
//	                    masked ("jane.doe@example.com" -> "j*******@example.com"). A local part
//	                    of one code point is masked ("j@x.io" -> "*@x.io"); a value without '@',
//	                    with an empty local part or an empty domain is masked whole.
//	redact              JSON null, or the policy's redaction string (response.reveal.redact_as)
//	token               "tok_" and 22 base64url characters (see Tokens)
//	ciphertext          the stored ciphertext, unchanged (it is not decrypted)
//
// Masks work on the decoded text of a JSON string and count Unicode code points, not bytes and
// not grapheme clusters (a flag emoji or a letter with a combining accent is two code points or
// more, and a mask may keep one of them: keep that in mind for P and S on such text). A masked
// value keeps the value's length in code points (one '*' each): masks hide the characters, not
// the length. Separators are not special: "123-45-6789" under mask:last4 is "*******6789". The
// output is a valid JSON string: kept code points are re-escaped where JSON requires it ('"',
// '\\', control characters) and U+2028 and U+2029 as \u2028 and \u2029; an invalid UTF-8 byte
// or a lone surrogate escape is kept as U+FFFD. A value that is not a string (number, object,
// array, boolean) under a mask is redacted; null stays null under every action (it holds no
// data). testdata/masks.json holds examples with their expected output.
//
// # Tokens
//
// A token is a keyed HMAC of the value under the tenant's token key, derived with HKDF-SHA256
// ([DeriveTokenKey]) from the blind index root (blindindex.RootKeyID, version 1, a 32-byte key
// rkms keeps in its keyring) with its own info label:
//
//	key   = HKDF-SHA256(ikm = root, salt = none,
//	                    info = "rkms/v1 reveal-token" || u16be(len(key id)) || key id, length = 32)
//	token = "tok_" || base64url-nopad( HMAC-SHA256(key, text)[:16] )       (26 characters)
//
// text is a string's decoded text or a number's canonical decimal text (so "42" and 42 have
// the same token); other values are redacted. The key id is the data key id the policy computes
// for the request (the tenant): tokens of different tenants for equal values are unrelated, and
// a token key never equals a blind index key (other info label). The data key is not used, so
// tokens stay equal across data key rotations (analytics can join on them); the root is never
// rotated. A token cannot be reversed without the key, but it is a deterministic function of
// the value: whoever holds the token key (rkms, an operator with the keyring) can test guesses,
// and low-entropy values (SSNs, dates of birth) can be found by trying them all. The
// application and the token's readers cannot: they never see the key. testdata/tokens.json
// holds test vectors: root, key id, value, token (the string vectors were checked against an
// independent HKDF and HMAC in Python's hmac and hashlib when they were written).
//
// # Failure behaviour
//
// Nothing here fails on a value: a value an action cannot apply to is redacted by the caller,
// and no error or log quotes a value.
package reveal
