// Package secret holds plaintext key material in a small wrapper that never prints itself.
//
// A [Key] is the only way plaintext data keys travel through rkms: package keyring hands them
// out ([keyring.DataKey]) and package envelope seals and opens with them ([envelope.Key]). The
// package is public so that code outside the rkms module can name the type those packages carry,
// and build a key of its own with [New] (for example from a key it unwrapped itself).
//
// # Access
//
// The bytes are reachable through one named accessor, [Key.Use], which lends them to a function
// for the duration of the call, so every read of key material is greppable (search for ".Use(").
// This is the role tink-go gives its insecuresecretdataaccess token: reading the bytes is an
// explicit, visible act, never a field access or a conversion. [Key.Derive] builds a value
// from the bytes (for example an AEAD primitive) through the same path and memoizes it on the key.
// [Key.Len] reveals the length only.
//
// # Printing
//
// String, GoString, Format (every verb: %v, %+v, %#v, %s, %x, %q, ...), LogValue (log/slog) and
// MarshalText (encoding/json and other encoders) all produce the redaction "[redacted key]", so
// a key that reaches fmt, slog, an error or an encoder by mistake leaks nothing.
//
// # Wiping
//
// [Key.Wipe] zeroes the bytes (as far as Go allows: copies made by callers, by the GC or inside
// cipher implementations are out of reach), drops derived values and makes every later use fail
// with [ErrWiped]. It waits for uses in progress.
//
// # Memory
//
// Derived values live at most as long as the key and die with it. Keys made by a [Limiter] share
// a bound on how many of them hold derived values at once: the least recently used beyond it
// drop theirs and derive again on their next use.
//
// [keyring.DataKey]: https://pkg.go.dev/github.com/rkms/rkms/keyring#DataKey
// [envelope.Key]: https://pkg.go.dev/github.com/rkms/rkms/envelope#Key
package secret
