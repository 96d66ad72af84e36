// Package policy is the rkms policy model: the `policies:` section of the configuration
// ([Config]), its compiled form ([Set], [Policy]), how a request selects its policy, how its key
// id is computed ([KeyID]) and the tripwires that keep tagged plaintext away from the
// application ([Guard]). It knows nothing of gRPC or Envoy: the ext_proc server
// (github.com/rkms/rkms/extproc) and the configuration loader both use it, and `rkms policy
// test` runs it on a body without a server. The user-facing guide is docs/policies.md.
//
//	policies:
//	  - name: patients                 # 1..128 of [A-Za-z0-9._-]
//	    match: {path_prefix: /patients, methods: [POST, PUT, PATCH, GET]}
//	    key_id: "tenant-{header:x-tenant-id}"
//	    request:  {encrypt: ["$..ssn", "$..contact.email", "$..cards[*].number"]}
//	    # request.compressed: decompress (default: gzip/deflate/br/zstd bodies are decoded,
//	    # rewritten and sent on uncompressed) or refuse (415)
//	    response: {decrypt: ["$.ssn", "$.items[*].ssn", "$.contact.email", ...]}
//	    # response.reveal: {default, redact_as, audit, rules: [{name, when, fields}]}:
//	    # who sees what of each decrypted field (see Reveal rules)
//	    allow: ["$.doctor.email"]      # tagged names that may be plaintext there
//	    mode: randomized               # or deterministic
//	    case_sensitive: false          # default: paths and member names match case-folded
//	    legacy_plaintext: refuse       # or pass (migration only)
//	    decrypt_only: false            # true: decrypts what another route encrypts
//	    create: on_demand              # or admin_only: requests never create the key
//
// # Selection
//
// A route names its policy (the caller passes the name to [Set.Select]); an unknown name fails
// closed. Otherwise the first policy whose match rules accept the request applies:
//   - path_prefix is compared with the canonical path ([Canonical]): the :path without query,
//     unreserved percent-escapes decoded, dot segments and repeated slashes removed. rkms
//     normalizes the path itself, so its decision does not depend on Envoy's path settings.
//     The comparison ignores ASCII case unless case_sensitive is set.
//   - A path that matches no policy in canonical form but would match one once every escape is
//     decoded (twice), backslashes read as slashes, ';' parameters dropped and Unicode case
//     folded (/%2Fpatients, /patients;x=1, /ſatients) is refused with 400: some application
//     might read it that way.
//   - methods limit bodiless requests only. A request with a body is covered by the policy of
//     its path whatever its method, so no method or method override carries a tagged body past
//     the policy.
//
// # Key ids
//
// key_id is literal text (key id characters only) plus placeholders: {header:NAME} (exactly
// one distinct value), {path:N} (the N-th segment of the canonical path, 0-based) and
// {json:SELECTOR} (the one string or number SELECTOR selects in the request body). The computed
// id must be 1..256 bytes of [A-Za-z0-9._:/@+=-] ([envelope.ValidateKeyID]).
//
// # Fields and labels
//
// Each direction lists fields to encrypt and to decrypt, as jsonfield selectors or {path, label}
// mappings. The label defaults to the selector's last member name; it is bound into every
// ciphertext. Every decrypted field must be covered by an encrypted field of the other
// direction with the same label ([jsonfield.Selector.Covers]): a policy that decrypts
// $.items[*].ssn must encrypt $..ssn (or $.items[*].ssn) in requests, or declare decrypt_only.
//
// # Tripwires
//
// A body that goes to the application (requests, except those of policies whose requests
// decrypt; responses that the policy encrypts) is inspected whole ([Guard.Check]):
//   - a member named like any field of the policy (label or last selector name, escapes decoded,
//     case folded) must be encrypted there or covered by an allow selector, else 400 naming its
//     JSON path;
//   - the ciphertext marker "rkms:" in any string outside the encrypted values is refused (400):
//     clients never hold ciphertexts, so it is an attempt to have a response decrypt one. The
//     path, query and header values of a request on a policy route are checked too
//     ([CheckHeaders]).
//
// At a decrypt path, a value that is not a ciphertext is refused unless legacy_plaintext is
// "pass"; null always passes.
//
// # Reveal rules
//
// response.reveal ([Reveal]) decides what each caller sees of each decrypted response field:
// for each field, the first rule whose conditions ([RevealWhen]: verified JWT claims, client
// certificate SANs, trusted headers; all must match, [ClaimHolds] says how a claim does) match
// and that names the field decides its action; a field no such rule names gets the default
// (redact when unset). [Reveals.Resolve] computes the decisions of one caller; the actions are
// package github.com/rkms/rkms/extproc/reveal's. [Warnings] reports rules that never apply.
//
// # Errors
//
// Refusals are [*Error] values whose Reason the caller maps to a status (BadInput: 400 on
// requests, 502 on responses; MediaType: 415). Their messages name JSON paths and header names,
// never values.
package policy
