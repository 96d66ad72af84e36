// Package awskms is a [keyring.Region] backed by AWS KMS (aws-sdk-go-v2), one client per region.
//
// # Calls
//
// GenerateDataKey asks for an AES_256 data key; Encrypt and Decrypt use SYMMETRIC_DEFAULT.
// Every call carries the encryption context given by the keyring, and Decrypt names the key
// (KeyId), so KMS refuses a ciphertext made under any other key. Every call runs under its own
// deadline ([Config.Timeout], default 2s): the SDK's HTTP client has no overall timeout, and a
// region that accepts connections but never answers would otherwise block until the caller gives
// up.
//
// # Key ids
//
// Configure a key ARN (best: it pins account and region) or a key id. An alias
// (`alias/...` or an alias ARN) is refused unless [Config.AllowAlias] is set: an alias can be
// repointed to another key, after which new copies are wrapped under a key that old copies'
// Decrypt calls (which name the configured key) no longer match, and whoever can move the alias
// chooses the key that wraps new data keys. A key ARN whose region differs from the client's
// region is refused.
//
// # Retries
//
// [Config.MaxAttempts] defaults to 1: the SDK does not retry. The keyring already falls back to
// another region, which is a better retry than asking a failing region again, and its circuit
// breaker needs to see failures quickly (a refused connection then fails in under a
// millisecond instead of 70-140 ms over three attempts). With MaxAttempts above 1 each region's
// client gets its own retryer with the client-side retry quota disabled, so that one dead region
// can never drain a retry budget shared with the others (the SDK's default quota, shared by a
// client, ran dry after about 18 failing calls in our measurements). Each Region owns its
// client; never share one client between regions.
//
// # Errors
//
// Errors wrap [keyring.ErrRegionUnavailable] for refused connections, timeouts, HTTP 5xx, server
// faults and throttling (ThrottlingException, LimitExceededException, KMSInternalException,
// DependencyTimeoutException, KeyUnavailableException, ...), and [keyring.ErrRegionRejected] for
// everything KMS answered and refused (AccessDenied, DisabledException, NotFoundException,
// KMSInvalidStateException, ...). A Decrypt refused as InvalidCiphertextException or
// IncorrectKeyException says "authentication failed" and nothing more. Errors never contain
// key material (plaintexts are never formatted; KMS messages do not carry them).
package awskms
