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
// The policy model (the `policies:` configuration, selection on a canonical path, key id
// templates, tripwires) is package github.com/rkms/rkms/extproc/policy; docs/policies.md is
// the user guide. An Envoy route names its policy with ExtProcPerRoute
// overrides.grpc_initial_metadata `x-rkms-policy: NAME` ([PolicyMetadataKey]); an unknown name
// fails closed (500). Otherwise the policy's own match rules apply. Requests without a policy
// pass untouched, and the header response asks Envoy (mode_override) to send nothing more for
// them. The key id is computed once per request (at request headers, or at the request body
// when it reads the body) and reused for the response, so a tenant can only ever read values
// sealed under its own key id: decryption checks that the ciphertext's key id equals the
// computed one before fetching any key.
//
// Every request body on a policy route is read: encrypted, inspected for tripwires, or (egress)
// decrypted. It must be JSON (415 otherwise) without a content encoding, and, when it goes to
// the application, declare no charset but UTF-8 (415).
//
// # Stamp
//
// The answer to the last request message rkms handles carries Envoy dynamic metadata
// {"rkms": {"processed": true, "policy": NAME}} ([StampNamespace]). The shipped Envoy configs
// refuse requests without it in an RBAC filter after ext_proc, so a request that skipped rkms
// (failure_mode_allow: true while rkms is down, a route with ext_proc disabled) never reaches
// the application.
//
// # Transforms
//
// Bodies are rewritten in place with jsonfield: every byte outside the selected values is kept.
// Encrypting replaces the value's exact JSON text by the JSON string of its ciphertext; a value
// that already is an rkms ciphertext is refused. Decrypting replaces a ciphertext string by the
// JSON text it protects; a value that is not an rkms ciphertext is refused (legacy_plaintext:
// pass lets it through, counted as ObserveFields op "legacy_plaintext"), except null. Whenever
// a body changes, content-length is set to its new length in the same response. Bodies that go
// to the application are checked for tripwires in the same pass, before any value is sealed.
//
// A policy with response.reveal then gives each decrypted response value the action its rules
// decide for the stream's verified caller (revealfields.go; package
// github.com/rkms/rkms/extproc/reveal): the plaintext, a mask of it, a token, a redaction, or
// the ciphertext as stored. The decisions are made once per body from the JWT payload, the
// client certificate's SANs and the request headers ([policy.Reveals.Resolve]); redact and
// ciphertext skip the decryption but still refuse another key id's ciphertext. Buffered and
// streamed bodies alike. [BodyTransform] (the CLI's open) applies no reveal rules.
//
// # Failure behaviour
//
// Everything fails closed. A refused request gets an ImmediateResponse with content-type
// application/json and body {"error": "..."}; the message never holds plaintext, ciphertext or
// key material, and every ciphertext that cannot be used (tampered, truncated, another tenant's
// key id, another field's label or record's context, a key version that is gone) gets the same
// message, "a stored field could not be decrypted (ciphertext authentication failed)", so that
// a client cannot tell the causes apart. The log record of a refusal ("request refused") names
// the path of the value that failed (field, e.g. $.items[3].ssn) and its first array index
// (record, the record's position in a list).
//
// There are no partial bodies: one value that fails refuses the whole message, even when it is
// one record of a list and the others would open. A response with a record left out, or
// its ciphertext passed through, would look complete to the client; the log says which record
// to repair.
//
//	problem                                            request  response
//	body not valid JSON                                400      502
//	body nested deeper than 1000 levels (JSON limit)   400      502
//	content-type not JSON                              415      502 if it encrypts, else passed
//	charset other than UTF-8 (body to the application) 415      502 if it encrypts
//	content-encoding unknown or stacked (gzip, br)     415      502
//	compressed request, request.compressed: refuse     415      -
//	compressed body corrupt, truncated, wrong coding   400      502
//	decoded body over MaxBodyBytes or the ratio (bomb) 413      502
//	ambiguous path (matches a policy only once decoded) 400     -
//	ciphertext marker in the path, query or a header   400      -
//	tripwire: tagged name not encrypted, ciphertext    400      502 if it encrypts
//	plaintext at a decrypt path (legacy_plaintext)     400      502
//	key id source missing, key id invalid              400      -
//	value to encrypt is already a ciphertext           400      502
//	ciphertext fails, other key id, key gone           400      502
//	key service unavailable or slower than KeyTimeout  503      503
//	create: admin_only and the key id has no key       403      403
//	ciphertext under a retired key version             403 + code key_version_retired (both phases)
//	new key over the key service's creation limit      429 + retry-after (both phases)
//	body over MaxBodyBytes                             413      502
//	streamed body over the policy's max_stream_bytes   413      reset
//	streamed value over 1 MiB or token over 64 KiB     413      reset
//	streamed body on a policy without stream           500      500 (at response headers)
//	streamed body neither NDJSON nor JSON              415      502 if it encrypts, else passed
//	streamed response: bad JSON, value fails to open   -       reset (gRPC InvalidArgument)
//	more than MaxFields values selected in the body    413      502
//	route names an unknown policy                      500      -
//	broken ext_proc message sequence                   gRPC FailedPrecondition (Envoy: status_on_error)
//	more than MaxConcurrentStreams streams in flight   gRPC ResourceExhausted (Envoy: status_on_error)
//	client or tenant over MaxStreamsPerClient/Tenant   429, retry-after 1 (stream then ended)
//	body over what MemoryBudget can hold now           503, retry-after 1 (stream then ended)
//	no message within FirstMessageTimeout/IdleTimeout, gRPC DeadlineExceeded (Envoy: status_on_error)
//	or a stream older than StreamTimeout
//
// # Compressed bodies
//
// A body whose content-encoding is gzip (or x-gzip), deflate (zlib), br or zstd is decoded
// (package [github.com/rkms/rkms/extproc/decompress]) before it is read, within MaxBodyBytes and
// [Options.MaxCompressionRatio] times its size, with that bound and the decoder's window reserved
// from the memory budget first; a bomb stops at the bound. The decoded body is what rkms checks
// and rewrites, and it goes on decoded, content-encoding removed and content-length set, even
// when no value changed. A policy with request.compressed: refuse refuses compressed requests.
// Requests on a route whose policy has response fields lose their accept-encoding header so
// that the application answers uncompressed (one that compresses anyway is decoded); Envoy's
// compressor filter, before ext_proc in the shipped configurations, still read the client's
// header and compresses the rewritten response. A response that is not JSON passes unchanged when
// the policy only decrypts responses (there is nothing to open and nothing to hide); this is
// also how Envoy's own local replies (text/plain 413 for an oversized request, 503 for a dead
// upstream), which run through ext_proc's response path, reach the client.
//
// # What Envoy must be configured with
//
// See envoy/ingress.yaml: failure_mode_allow false; headers SEND, bodies BUFFERED, trailers
// SKIP; allow_mode_override true; message_timeout above [Options.KeyTimeout] (2 s shipped);
// no observability mode (refused: it cannot enforce anything); a buffer limit no larger than
// [Options.MaxBodyBytes]; the stamp accepted (metadata_options.receiving_namespaces) and
// checked after ext_proc. Path normalization in Envoy is recommended but not relied on: rkms
// canonicalizes the path itself. Bodies are BUFFERED (a second body message in one direction
// ends the stream with an error) except on streaming routes (below). A response that arrives before any request
// headers is Envoy's own reply to a request it refused before ext_proc saw it: it passes,
// logged at debug level; unless it comes from a response-only route (below).
//
// # Response-only streams
//
// A policy with response_only ([ResponseOnlyCapable]) gets, from `rkms envoy-config`, a route
// for its bodiless GET and HEAD requests that skips the request headers ([ResponseOnlyMode],
// [RouteConfig].ResponseOnly): 2 messages instead of 3. rkms knows such a stream by its first
// message, response headers whose protocol_config says request body NONE and response body
// BUFFERED, and processes it as the response phase of the same request on the normal route, the
// key id and context computed from the JWT payload in metadata_context. The stream is refused
// when the route names no policy, an unknown one or one without response_only; without a JWT
// payload where the key id reads one, it is jwt_authn's own reply and passes unopened
// (responseonly.go; envoy/README.md, "Fewest round trips").
//
// # Pipelined request bodies
//
// A stream whose first message's protocol_config says send_body_without_waiting_for_header_response
// with a STREAMED request body (the shipped rkms.ext_proc.pipelined filter, [PipelinedFilterName])
// gets the request body right behind its headers. rkms then holds its answer to the headers
// until the body is processed and sends both answers back to back: the request waits for one
// round trip to rkms instead of two. The held headers answer carries the stamp and every header
// change of the request (the body's content-length, a removed content-encoding); a refusal
// answers the headers with the ImmediateResponse, so an unprocessed body is never stamped. The
// body must come in one message (end_of_stream), else it is refused. The shipped configurations
// do not use it: it saved no measurable latency and lets a body flood past rkms's admission at
// the headers; [RouteConfigFor] says which filter and static mode serve a policy's route
// (envoy/README.md, "Fewest round trips").
//
// # Streaming routes
//
// A route that Envoy configures with FULL_DUPLEX_STREAMED bodies and the gRPC metadata
// [StreamMetadataKey]: [StreamMetadataValue] (envoy/README.md, "Streaming routes") has its
// bodies rewritten chunk by chunk with jsonfield's Stream: each chunk is answered with a
// streamed_response holding what may go on now, the last with end_of_stream; data after the
// first end_of_stream is ignored (envoyproxy/envoy#46237). The policy must set
// request.stream / response.stream for the directions that stream (else 500); NDJSON content
// types get the policy per line and errors name the line. The key id is computed and the keys
// looked up at the request headers (streaming policies cannot read the key id from the body),
// and the stamp rides on the request headers' answer, since the body only ever goes on through
// rkms. What the stream holds (one value, a pending token, the last answer) is charged to
// [Options.MemoryBudget] chunk by chunk, and a body over the policy's max_stream_bytes is
// refused. No mode_override is sent on these routes (Envoy 1.40 applies it and then rejects the
// streamed answers).
//
// A refusal while the request streams is an immediate response (Envoy sends it; the app, which
// has the lines before the bad one, sealed, sees its request reset). Once response headers have
// gone to the client, a refusal ends the ext_proc stream with a non-OK gRPC status
// (InvalidArgument for a bad value, ResourceExhausted for a limit, Unavailable for the key
// service): Envoy resets the client's stream, whose body stops short. A selected value's bytes
// are never forwarded before it has been sealed or opened whole.
//
// # Limits
//
// Besides MaxConcurrentStreams, each stream's life and waits are bounded (Options.StreamTimeout,
// FirstMessageTimeout, IdleTimeout): Process serves the stream on a second goroutine and waits
// for its end or its watchdog timer, since only the handler's return cancels a blocked Recv or
// Send. Streams are counted per client and per tenant from the message that identifies them; a
// body's cost ([BodyCostFactor] times its size) is reserved from [Options.MemoryBudget] when its
// headers arrive and given back once its answer is sent (the answer's own bytes once the peer
// has read it). [LimitObserver] hears of every refusal and [Server.Stats] reports the budget.
// RELIABILITY.md has the table of limits.
//
// # Keys
//
// [Keys] is the small interface the server needs; the wiring code adapts the keyring to it and
// wraps keyring errors into [ErrKeyUnavailable], [ErrKeyNotFound], [ErrInvalidKeyID],
// [ErrKeyUnknown] and [ErrKeyCreateLimited]. A policy with create: admin_only seals with
// [Keys.Lookup], which never creates: a key id without a key is refused with 403
// (rkms_key_unknown). Otherwise [Keys.Current] creates on first use, and a creation over the key
// service's rate limit is refused with 429 and retry-after (rkms_key_create_limited). Key
// lookups of one message share one deadline, [Options.KeyTimeout]. Nothing is cached here
// beyond one body (the keyring caches). The context a Keys method receives carries the HTTP request's
// id ([RequestID]) and the gRPC peer, so that an implementation can attribute key creation.
//
// A ciphertext whose key version was retired (Version wraps [ErrKeyRetired]) is refused with 403
// and the JSON code key_version_retired (rkms_key_version_retired), not as a failed
// authentication: it is an operator's decision. Keys that also implement [SealCounter] are told
// of every value before it is sealed; a version out of seals ([ErrKeySealLimit]) is replaced by
// the current key, at most three times per body.
//
// # Observability
//
// Each stream logs through one logger carrying its request_id (Envoy's x-request-id, else a
// random one) and, once chosen, its policy. [Options.Observer], when set, hears of every message
// answered (phase, outcome, HTTP status of a refusal, time taken) and of the values sealed and
// opened; its labels are bounded (configured policy names only, never key ids). Nil costs
// nothing on the hot path. An Observer that is a [RevealObserver] also counts reveals (policy,
// rule, action); [Options.RevealAuditor] gets one record per revealed response body of a policy
// with reveal.audit (selectors, rules, actions, counts; never values).
package extproc
