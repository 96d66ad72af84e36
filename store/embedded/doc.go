// Package embedded is a [store.Store] kept in one local file, for a single rkms process on one
// machine (development, edge deployments, tests). It is built on go.etcd.io/bbolt.
//
// # File
//
// [Open] creates the file with mode 0600 (and its parent directory with mode 0700 if missing) and
// takes an exclusive lock on it. A second process (or a second Open in the same process) waits at
// most [LockTimeout] for the lock and then fails with [ErrLocked], instead of hanging.
//
// The bbolt file holds two buckets:
//
//   - "meta": key "format" = "1", the file format version. Open refuses a file with another value.
//   - "records": key = the key id's bytes, value = the record's encoding (below).
//
// # Record encoding, version 1
//
// One JSON object per record, field names fixed, no other fields allowed:
//
//	{
//	  "format": 1,                       // encoding version; decoders reject any other value
//	  "id": "payments/card",             // equals the bucket key
//	  "revision": 3,                     // int64 >= 1 (Create: random below 2^62; Update: +1)
//	  "current": 2,                      // uint32
//	  "versions": [                      // ascending number order, as given by the writer
//	    {
//	      "number": 1,                   // uint32
//	      "created": "2025-03-14T15:09:26.535897932Z", // RFC 3339, UTC, nanoseconds
//	      "wrapped": {                   // by region name; may be empty
//	        "us-east-1": {"key_id": "arn:aws:kms:...", "blob": "AQID..."} // blob: standard base64, padded
//	      },
//	      "missing": ["eu-west-1"]       // may be empty or absent
//	    }
//	  ],
//	  "deleted": "2025-07-01T12:00:00Z"  // tombstone time (store.Record.Deleted); absent when live
//	}
//
// "deleted" was added after the first release without a format change: records written before
// it have no such field and are live; a tombstone has it and (normally) no versions. An older
// rkms refuses a tombstone as corrupt (unknown field), which fails closed.
//
// testdata/record-v1.json is a golden example that the tests decode and re-encode byte for byte.
// A value that does not decode (bad JSON, unknown field, other format version, id mismatch) makes
// Get fail with an error wrapping [store.ErrCorrupt].
//
// # Durability and concurrency
//
// Every Create, Update and Delete is one bbolt read-write transaction, committed and fsynced before
// the method returns, so a crash loses no acknowledged write and never leaves a half-written
// record. bbolt serializes writers, which makes Create first-write-wins and Update a true
// compare-and-swap within the process that holds the file.
//
// List reads a bbolt cursor from the first id after the cursor (the last id of the previous
// page) that has the prefix: ids come in byte order across pages.
//
// bbolt operations cannot be interrupted: each method checks its context before starting and
// otherwise runs to completion (a local transaction takes microseconds to milliseconds).
package embedded
