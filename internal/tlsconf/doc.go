// Package tlsconf builds the server-side TLS configuration of rkms's listeners (admin HTTP, gRPC
// key API, ext_proc) from PEM files, and reloads them when they change.
//
// # Files
//
// [Files] names a certificate chain (cert_file, PEM, leaf first), its private key (key_file,
// PEM) and optionally a bundle of client CA certificates (client_ca_file, PEM). With a client CA
// the listener requires mutual TLS: every client must present a certificate that chains to one
// of those CAs and is valid for client authentication; anything else fails the handshake. [Check]
// loads and parses the files without serving (`rkms config check` runs it).
//
// # Protocol
//
// TLS 1.2 is the minimum, TLS 1.3 is preferred (Go negotiates the highest version both sides
// support). TLS 1.2 is limited to ECDHE cipher suites with AEADs (Go's defaults, which exclude
// CBC, RSA key exchange and 3DES).
//
// # Reloading
//
// [New] returns a tls.Config whose GetConfigForClient looks at the files' modification times and
// sizes at most once per [Options.CheckInterval] (default 5s) during handshakes, and reloads them
// when one changed. A reload that fails (for example a half-written pair) is logged and the
// previous certificates stay in use until the files are consistent again; established
// connections are never affected.
package tlsconf
