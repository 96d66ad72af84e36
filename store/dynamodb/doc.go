// Package dynamodb is a [store.Store] on an Amazon DynamoDB table, optionally a global table
// replicated to several regions, for rkms deployments with many replicas.
//
// # Use
//
//	s, err := dynamodb.New(ctx, dynamodb.Config{
//		Table:     "rkms-keys",
//		Endpoints: []string{"us-east-1", "eu-west-1"}, // write region first, then read fallbacks
//	}, awsCfg)
//
// [New] takes the credentials and HTTP client from an aws.Config (config.LoadDefaultConfig) and
// builds one DynamoDB client per endpoint, each with its own retryer. It does no I/O unless
// [Config.CreateTable] is set.
//
// # Table schema
//
// One item per key id. The partition key is the only key; there is no sort key and no index.
//
//	id        S  partition key: the key id
//	schema    N  item layout version, 1; readers reject any other value (store.ErrCorrupt)
//	rev       N  revision, the compare-and-swap token: on Create a random integer in [1, 2^62)
//	             (store.NewRevision), so a re-created item never repeats a deleted one's
//	             revisions; +1 per Update; at most 2^63-1
//	cur       N  current version number
//	versions  L  one M per version, ascending:
//	  number    N  version number
//	  created   S  RFC 3339 time, UTC, nanoseconds
//	  wrapped   M  by region name, one M each:
//	    key_id    S  KMS key that wrapped the DEK (left out when empty)
//	    blob      B  KMS ciphertext of the DEK, raw bytes (left out when empty)
//	  missing   L  of S: regions that still lack a wrapped copy (left out when empty)
//	deleted   S  RFC 3339 time, UTC: the item is a tombstone (store.Record.Deleted); left out
//	             when live. Added without a schema change: older items lack it and are live;
//	             an older rkms reads a tombstone as a record without its current version and
//	             fails closed
//
// Other attributes are ignored on read and dropped by the next write (the legacy global-tables
// version adds aws:rep:* attributes). testdata/item-v1.json shows an item in DynamoDB JSON, as
// `aws dynamodb get-item` prints it. An item is at most 400 KB, which holds hundreds of versions
// with three regions each; a write over the limit fails with store.ErrInvalid.
//
// The table is created with [Config.CreateTable] (on-demand billing, key id S HASH) or by
// infrastructure tooling with the same key schema. No TTL, streams, transactions or
// ReturnValuesOnConditionCheckFailure are used, so the store also runs on dynalite.
//
// # Operations
//
//   - Get: GetItem with ConsistentRead on the first endpoint; on [store.ErrUnavailable] only, the
//     next endpoint, and so on. Found, not found and corrupt answers are final.
//   - Create: PutItem with attribute_not_exists(id); a failed condition is [store.ErrExists].
//   - Update: PutItem of the whole item with rev = :expected; on a failed condition a consistent
//     GetItem tells [store.ErrNotFound] (item absent) from [store.ErrConflict] (anything else).
//   - Delete: DeleteItem with attribute_exists(id); a failed condition is [store.ErrNotFound].
//   - List: Scan with ConsistentRead, Limit and ExclusiveStartKey (the cursor is the id of
//     LastEvaluatedKey) on the first endpoint, falling back like Get; a prefix is a
//     FilterExpression begins_with(id, :prefix), applied by DynamoDB after Limit, so a page can
//     be short or empty while more follow. Scan order is DynamoDB's hash order: each page is
//     sorted by id, the listing as a whole is in no documented order, and ids created or
//     deleted during a listing may or may not appear. A scan reads (and bills) whole items.
//   - Ping: an eventually consistent GetItem of a reserved id ("#rkms-ping", never a valid key
//     id), succeeding if any endpoint answers. It needs only dynamodb:GetItem, and tells
//     readiness the store can serve reads; writes may still fail if the write region is down.
//
// IAM permissions: dynamodb:GetItem, PutItem, DeleteItem on the table, Scan for listing; DescribeTable and
// CreateTable only with CreateTable.
//
// # Why writes go to one region
//
// Create is first-write-wins and Update a compare-and-swap. DynamoDB evaluates a condition only
// against the region that receives the write; global tables replicate with last-writer-wins
// between regions. If two replicas created the same key id in two regions at once, both conditions
// would pass, both would answer success, and replication would keep one DEK and silently drop
// the other, together with everything encrypted under it. So every write goes to the first
// endpoint (the write region) and fails with [store.ErrUnavailable] when it is down, rather than
// falling back. Reads may fall back: in a replica region they are consistent only within that
// region and may lag the write region by the replication delay (typically about a second), which
// is harmless for reading existing versions but may miss a just-created key or rotation.
// A global table in multi-region strong consistency (MRSC) mode makes conditional writes safe in
// every region; the store still writes to the first endpoint only.
//
// # Failure behaviour
//
// Every call to one endpoint has its own deadline ([Config.Timeout], default 2 s) on top of the
// caller's context, so an endpoint that accepts connections and never answers costs at most the
// timeout, and a Get with n endpoints at most n timeouts. Each endpoint has its own retryer:
// [Config.MaxAttempts] attempts (default 2), backoff at most 200 ms, and no client-wide retry quota,
// so a dead endpoint fails fast (measured: 3-50 ms on loopback with connection refused) and never
// starves the others.
//
// Errors: condition failures map as above; a request DynamoDB rejects as malformed
// (ValidationException, SerializationException) wraps [store.ErrInvalid]; everything else
// (network errors, timeouts, throttling, 5xx, a missing table, denied access, a done context)
// wraps [store.ErrUnavailable], and the context's error too when the caller's context ended.
// When all endpoints fail, the error joins each endpoint's error.
//
// A retried write whose first attempt succeeded but whose answer was lost surfaces as ErrExists
// (Create) or ErrConflict (Update) for the caller's own write; the store contract already makes
// callers re-read in both cases.
package dynamodb
