// Package extproc is rkms's Envoy external processor: a gRPC
// envoy.service.ext_proc.v3.ExternalProcessor that encrypts tagged JSON fields of request bodies
// before they reach the application and decrypts them in its responses (or, for egress, the
// other way round).
//
//	srv, err := extproc.NewServer(cfg.Policies, keys, extproc.Options{Logger: log})
//	g := grpc.NewServer(srv.GRPCServerOptions()...)
//	srv.Register(g)
//
// # Policies
//
// A [PolicyConfig] is one entry of the `policies:` list of the configuration file:
//
//	policies:
//	  - name: patients                 # 1..128 of [A-Za-z0-9._-]
//	    match: {path_prefix: /patients, methods: [POST, PUT, PATCH, GET]}
//	    key_id: "tenant-{header:x-tenant-id}"
//	    request:  {encrypt: ["$.ssn", "$.contact.email", "$.cards[*].number"]}
//	    response: {decrypt: ["$.ssn", "$.items[*].ssn", {path: "$.card", label: "pan"}]}
//	    mode: randomized               # or deterministic (equal plaintexts, equal ciphertexts)
//	    case_sensitive: false          # default: member names match under case folding
//
// Each direction lists fields to encrypt and fields to decrypt, as jsonfield selectors or
// {path, label} mappings. The label defaults to the selector's last member name ("ssn" for $.ssn
// and $.items[*].ssn); a selector without one ($.a[*]) needs an explicit label. The label and
// the key id are bound into every ciphertext, so a stored value decrypts wherever the same label
// selects it (a single record or a list), and fails once moved into a field with another label.
// [CheckPolicies] reports every problem at once, naming the policy and the field; [NewServer]
// runs it.
//
// # Key ids
//
// key_id is literal text (key id characters only) plus placeholders:
//
//	{header:NAME}    the request header NAME (exactly one distinct value)
//	{path:N}         the N-th segment (0-based, after the leading slash) of the path
//	{json:SELECTOR}  the one string or number SELECTOR selects in the request body
//
// The computed id must be 1..256 bytes of [A-Za-z0-9._:/@+=-]. It is computed once per request
// (at request headers, or at the request body when it reads the body) and reused for the
// response, so a tenant can only ever read values sealed under its own key id: decryption checks
// that the ciphertext's key id equals the computed one before fetching any key. That protection
// is only as strong as the source of the key id: a header used in key_id must be set or
// verified by something the client cannot bypass (an authentication filter before ext_proc, or
// the route itself); a client free to choose x-tenant-id chooses its key.
//
// # Policy selection
//
// An Envoy route names its policy with ExtProcPerRoute overrides.grpc_initial_metadata
// `x-rkms-policy: NAME` ([PolicyMetadataKey]); an unknown name fails closed (500). Otherwise the
// first policy whose match rules accept the request applies (path_prefix on the path without
// the query, a plain string prefix; methods, any if empty). A policy without match rules is only
// used when a route names it. Requests without a policy pass untouched, and the header response
// asks Envoy (mode_override) to send nothing more for them.
//
// # Transforms
//
// Bodies are rewritten in place with jsonfield: every byte outside the selected values is kept.
// Encrypting replaces the value's exact JSON text by the JSON string of its ciphertext; a value
// that already is an rkms ciphertext is refused. Decrypting replaces a ciphertext string by the
// JSON text it protects; values that are not rkms ciphertexts (legacy plaintext, null, numbers)
// pass unchanged. Whenever a body changes, content-length is set to its new length in the same
// response.
//
// # Failure behaviour
//
// Everything fails closed. A refused request gets an ImmediateResponse with content-type
// application/json and body {"error": "..."}; the message never holds plaintext, ciphertext or
// key material, and a ciphertext that cannot be used says only "authentication failed".
//
//	problem                                            request  response
//	body not valid JSON                                400      502
//	content-type not JSON (policy has fields there)    415      502 if it encrypts, else passed
//	content-encoding not identity                      415      502
//	key id source missing, key id invalid              400      -
//	value to encrypt is already a ciphertext           400      502
//	ciphertext fails, other key id, key gone           400      502
//	key service unavailable or slower than KeyTimeout  503      503
//	body over MaxBodyBytes                             413      502
//	more than MaxFields values selected in the body    413      502
//	route names an unknown policy                      500      -
//	broken ext_proc message sequence                   gRPC FailedPrecondition (Envoy: status_on_error)
//	more than MaxConcurrentStreams streams in flight   gRPC ResourceExhausted (Envoy: status_on_error)
//
// Requests on a route whose policy has response fields lose their accept-encoding header so
// that the application answers uncompressed. A response that is not JSON passes unchanged when
// the policy only decrypts responses (there is nothing to open and nothing to hide); this is
// also how Envoy's own local replies (text/plain 413 for an oversized request, 503 for a dead
// upstream), which run through ext_proc's response path, reach the client.
//
// # What Envoy must be configured with
//
// See envoy/ingress.yaml: failure_mode_allow false; headers SEND, bodies BUFFERED, trailers
// SKIP; allow_mode_override true; message_timeout above [Options.KeyTimeout] (2 s shipped);
// no observability mode (refused: it cannot enforce anything); a buffer limit no larger than
// [Options.MaxBodyBytes]; path normalization on (normalize_path, merge_slashes), as policies
// match on the path. Only BUFFERED bodies are supported: a second body message in one direction
// ends the stream with an error.
//
// # Keys
//
// [Keys] is the small interface the server needs; the wiring code adapts the keyring to it and
// wraps keyring errors into [ErrKeyUnavailable], [ErrKeyNotFound] and [ErrInvalidKeyID]. Key
// lookups of one message share one deadline, [Options.KeyTimeout]. Nothing is cached here
// beyond one body (the keyring caches). The context a Keys method receives carries the HTTP request's
// id ([RequestID]) and the gRPC peer, so that an implementation can attribute key creation.
//
// # Observability
//
// Each stream logs through one logger carrying its request_id (Envoy's x-request-id, else a
// random one) and, once chosen, its policy. [Options.Observer], when set, hears of every message
// answered (phase, outcome, HTTP status of a refusal, time taken) and of the values sealed and
// opened; its labels are bounded (configured policy names only, never key ids). Nil costs
// nothing on the hot path.
package extproc
