package embedded

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/rkms/rkms/store"
)

// LockTimeout is how long [Open] waits for another holder of the file to release it.
const LockTimeout = time.Second

// ErrLocked is returned (wrapped) by [Open] when another process holds the file.
var ErrLocked = errors.New("key store file is locked by another process")

var (
	bucketMeta    = []byte("meta")
	bucketRecords = []byte("records")
	keyFormat     = []byte("format")
	fileFormat    = []byte("1")
)

// Store is a [store.Store] in one bbolt file. It is safe for concurrent use.
type Store struct {
	db   *bolt.DB
	path string
}

var _ store.Store = (*Store)(nil)

// Open opens the store file at path, creating it (mode 0600) and its parent directory (mode 0700)
// if needed. It fails with an error wrapping [ErrLocked] after [LockTimeout] if another process
// holds the file, and with an error wrapping [store.ErrCorrupt] if the file is not an rkms store.
func Open(path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("open key store: empty path")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open key store: create directory: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: LockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open key store %s: waited %s: %w", path, LockTimeout, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("open key store %s: %w", path, err)
	}
	if err := db.Update(initialize); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open key store %s: %w", path, err)
	}
	return &Store{db: db, path: path}, nil
}

// initialize creates the buckets of a new file and checks the format of an existing one.
func initialize(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		if tx.Bucket(bucketRecords) != nil {
			return fmt.Errorf("records without a format marker: %w", store.ErrCorrupt)
		}
		var err error
		if meta, err = tx.CreateBucket(bucketMeta); err != nil {
			return err
		}
		if err := meta.Put(keyFormat, fileFormat); err != nil {
			return err
		}
	}
	if f := meta.Get(keyFormat); string(f) != string(fileFormat) {
		return fmt.Errorf("file format %q, want %q: %w", f, fileFormat, store.ErrCorrupt)
	}
	_, err := tx.CreateBucketIfNotExists(bucketRecords)
	return err
}

// Path returns the file the store was opened from.
func (s *Store) Path() string { return s.path }

// Get implements [store.Store.Get].
func (s *Store) Get(ctx context.Context, id string) (*store.Record, error) {
	if err := store.CheckID(id); err != nil {
		return nil, fmt.Errorf("get key record: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, unavailable("get key record", id, err)
	}
	var rec *store.Record
	err := s.db.View(func(tx *bolt.Tx) error {
		data := tx.Bucket(bucketRecords).Get([]byte(id))
		if data == nil {
			return store.ErrNotFound
		}
		var err error
		rec, err = decodeFor(id, data) // decode copies out of the mmap
		return err
	})
	if err != nil {
		return nil, classify("get key record", id, err)
	}
	return rec, nil
}

// Create implements [store.Store.Create].
func (s *Store) Create(ctx context.Context, rec *store.Record) error {
	if err := store.CheckRecord(rec); err != nil {
		return fmt.Errorf("create key record: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return unavailable("create key record", rec.ID, err)
	}
	c := rec.Clone()
	c.Revision = store.NewRevision()
	data, err := encode(c)
	if err != nil {
		return err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRecords)
		if b.Get([]byte(rec.ID)) != nil {
			return store.ErrExists
		}
		return b.Put([]byte(rec.ID), data)
	})
	if err != nil {
		return classify("create key record", rec.ID, err)
	}
	rec.Revision = c.Revision
	return nil
}

// Update implements [store.Store.Update].
func (s *Store) Update(ctx context.Context, rec *store.Record) error {
	if err := store.CheckRecord(rec); err != nil {
		return fmt.Errorf("update key record: %w", err)
	}
	next, err := store.NextRevision(rec.Revision)
	if err != nil {
		return fmt.Errorf("update key record %q: %w", rec.ID, err)
	}
	if err := ctx.Err(); err != nil {
		return unavailable("update key record", rec.ID, err)
	}
	c := rec.Clone()
	c.Revision = next
	data, err := encode(c)
	if err != nil {
		return err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRecords)
		old := b.Get([]byte(rec.ID))
		if old == nil {
			return store.ErrNotFound
		}
		stored, err := decodeFor(rec.ID, old)
		if err != nil {
			return err
		}
		if stored.Revision != rec.Revision {
			return fmt.Errorf("revision %d, stored %d: %w", rec.Revision, stored.Revision, store.ErrConflict)
		}
		return b.Put([]byte(rec.ID), data)
	})
	if err != nil {
		return classify("update key record", rec.ID, err)
	}
	rec.Revision = c.Revision
	return nil
}

// Delete implements [store.Store.Delete].
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := store.CheckID(id); err != nil {
		return fmt.Errorf("delete key record: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return unavailable("delete key record", id, err)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRecords)
		if b.Get([]byte(id)) == nil {
			return store.ErrNotFound
		}
		return b.Delete([]byte(id))
	})
	if err != nil {
		return classify("delete key record", id, err)
	}
	return nil
}

// List implements [store.Store.List] in id order (bbolt keeps keys sorted by bytes): a cursor
// seeks to the first id after opts.After that has opts.Prefix and reads at most opts.Limit ids.
func (s *Store) List(ctx context.Context, opts store.ListOptions) (store.ListPage, error) {
	if err := store.CheckListOptions(opts); err != nil {
		return store.ListPage{}, fmt.Errorf("list key records: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return store.ListPage{}, unavailable("list key records", opts.Prefix, err)
	}
	var page store.ListPage
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRecords).Cursor()
		prefix := []byte(opts.Prefix)
		start := prefix
		if opts.After >= opts.Prefix {
			start = append([]byte(opts.After), 0) // the smallest key after opts.After
		}
		for k, v := c.Seek(start); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(page.Entries) == opts.Limit {
				page.Next = page.Entries[len(page.Entries)-1].ID
				break
			}
			page.Entries = append(page.Entries, store.ListEntry{ID: string(k), Deleted: tombstoneOf(v)})
		}
		return nil
	})
	if err != nil {
		return store.ListPage{}, classify("list key records", opts.Prefix, err)
	}
	return page, nil
}

// Ping implements [store.Store.Ping]: it runs a read transaction on the open file.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("ping key store: %w: %w", store.ErrUnavailable, err)
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketRecords) == nil {
			return fmt.Errorf("records bucket missing: %w", store.ErrCorrupt)
		}
		return nil
	})
	if err != nil {
		return classify("ping key store", "", err)
	}
	return nil
}

// Close releases the file and its lock; later operations fail with [store.ErrUnavailable].
// It waits for running transactions and is safe to call more than once.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close key store %s: %w", s.path, err)
	}
	return nil
}

// decodeFor decodes data stored under id and checks that it names id.
func decodeFor(id string, data []byte) (*store.Record, error) {
	rec, err := decode(data)
	if err != nil {
		return nil, err
	}
	if rec.ID != id {
		return nil, fmt.Errorf("record stored under %q names %q: %w", id, rec.ID, store.ErrCorrupt)
	}
	return rec, nil
}

func unavailable(op, id string, ctxErr error) error {
	return fmt.Errorf("%s %q: %w: %w", op, id, store.ErrUnavailable, ctxErr)
}

// classify wraps err for op: the store's own sentinels pass through, anything else from bbolt (a
// closed database, an I/O error) means the store cannot answer.
func classify(op, id string, err error) error {
	what := op
	if id != "" {
		what = fmt.Sprintf("%s %q", op, id)
	}
	for _, sentinel := range []error{store.ErrNotFound, store.ErrExists, store.ErrConflict, store.ErrCorrupt} {
		if errors.Is(err, sentinel) {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	return fmt.Errorf("%s: %w: %w", what, store.ErrUnavailable, err)
}
