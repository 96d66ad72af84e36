package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/rkms/rkms/store"
)

// Defaults for [Config] fields left zero.
const (
	DefaultTimeout     = 2 * time.Second
	DefaultMaxAttempts = 2
	maxRetryBackoff    = 200 * time.Millisecond
	pingID             = "#rkms-ping" // never a valid keyring id
)

// Config configures a [Store]. Only Table is required.
type Config struct {
	// Table is the DynamoDB table name.
	Table string
	// Region signs requests to URL endpoints given without a region, and is the SDK's endpoint
	// region when Endpoints is empty. Empty means the aws.Config's region.
	Region string
	// Endpoints lists where the table (or its global-table replicas) can be reached, the write
	// region first; reads fall back along the list. Each entry is "REGION" (the SDK's standard
	// endpoint for that region), "URL" (signed for Region) or "REGION=URL". Empty means one
	// endpoint: the SDK's default for Region.
	Endpoints []string
	// CreateTable creates the table (on-demand billing) if it is missing and waits until it is
	// ACTIVE. Only allowed with a single endpoint: replicas of a global table must be created
	// by infrastructure tooling, or they would be independent tables that never see writes.
	CreateTable bool
	// Timeout bounds each call to one endpoint, retries included (default [DefaultTimeout]).
	Timeout time.Duration
	// MaxAttempts is the number of attempts per call to one endpoint, 1 = no retry
	// (default [DefaultMaxAttempts]). Retries wait at most 200 ms and have no client-wide quota.
	MaxAttempts int
}

// Store is a [store.Store] on a DynamoDB table. It is safe for concurrent use.
type Store struct {
	table      string
	timeout    time.Duration
	clients    []*client // clients[0] is the write endpoint
	transports []*http.Transport
	closed     atomic.Bool
}

var _ store.Store = (*Store)(nil)

type client struct {
	name string
	db   *dynamodb.Client
}

// New returns a Store for cfg, using awsCfg for credentials (its retryer is replaced, and its HTTP
// client used if set). New does no I/O unless cfg.CreateTable is set; then it creates the table
// if missing and waits for it until ctx ends.
func New(ctx context.Context, cfg Config, awsCfg aws.Config) (*Store, error) {
	if cfg.Table == "" {
		return nil, errors.New("dynamodb store: no table name")
	}
	if cfg.Timeout < 0 || cfg.MaxAttempts < 0 {
		return nil, errors.New("dynamodb store: negative timeout or attempts")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.Region == "" {
		cfg.Region = awsCfg.Region
	}
	raw := cfg.Endpoints
	if len(raw) == 0 {
		if cfg.Region == "" {
			return nil, errors.New("dynamodb store: no region and no endpoints")
		}
		raw = []string{cfg.Region}
	}
	if cfg.CreateTable && len(raw) > 1 {
		return nil, errors.New("dynamodb store: create_table needs a single endpoint; create global table replicas with infrastructure tooling")
	}
	s := &Store{table: cfg.Table, timeout: cfg.Timeout}
	for _, r := range raw {
		ep, err := parseEndpoint(r, cfg.Region)
		if err != nil {
			return nil, fmt.Errorf("dynamodb store: %w", err)
		}
		s.clients = append(s.clients, s.newClient(ep, awsCfg, cfg.MaxAttempts))
	}
	if cfg.CreateTable {
		if err := s.ensureTable(ctx); err != nil {
			_ = s.Close()
			return nil, err
		}
	}
	return s, nil
}

func (s *Store) newClient(ep endpoint, awsCfg aws.Config, attempts int) *client {
	httpClient := awsCfg.HTTPClient
	if httpClient == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		s.transports = append(s.transports, tr)
		httpClient = &http.Client{Transport: tr}
	}
	db := dynamodb.NewFromConfig(awsCfg, func(o *dynamodb.Options) {
		o.Region = ep.region
		if ep.url != "" {
			o.BaseEndpoint = aws.String(ep.url)
		}
		o.HTTPClient = httpClient
		o.Retryer = retry.NewStandard(func(r *retry.StandardOptions) {
			r.MaxAttempts = attempts
			r.MaxBackoff = maxRetryBackoff
			r.RateLimiter = ratelimit.None // one failing endpoint must not drain others' retries
		})
	})
	return &client{name: ep.name(), db: db}
}

// call runs fn against c with the per-call timeout and classifies its error (see classify).
func (s *Store) call(ctx context.Context, c *client, fn func(ctx context.Context) error) error {
	if s.closed.Load() {
		return fmt.Errorf("dynamodb %s: store is closed: %w", c.name, store.ErrUnavailable)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("dynamodb %s: %w: %w", c.name, store.ErrUnavailable, err)
	}
	callCtx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	err := fn(callCtx)
	if err == nil {
		return nil
	}
	return classify(ctx, callCtx, c.name, s.timeout, err)
}

// Get implements [store.Store.Get]. It reads the write endpoint with a strongly consistent read
// and, only if that endpoint is unavailable, the next ones in order. Every other answer (found,
// not found, corrupt) is final.
func (s *Store) Get(ctx context.Context, id string) (*store.Record, error) {
	if err := store.CheckID(id); err != nil {
		return nil, fmt.Errorf("get key record: %w", err)
	}
	var errs []error
	for _, c := range s.clients {
		rec, err := s.getFrom(ctx, c, id)
		switch {
		case err == nil:
			return rec, nil
		case !errors.Is(err, store.ErrUnavailable) || ctx.Err() != nil: // final answer, or caller gave up
			return nil, fmt.Errorf("get key record %q: %w", id, err)
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("get key record %q: all %d endpoints failed: %w", id, len(errs), errors.Join(errs...))
}

func (s *Store) getFrom(ctx context.Context, c *client, id string) (*store.Record, error) {
	var out *dynamodb.GetItemOutput
	err := s.call(ctx, c, func(ctx context.Context) error {
		var err error
		out, err = c.db.GetItem(ctx, &dynamodb.GetItemInput{
			TableName:      aws.String(s.table),
			Key:            keyOf(id),
			ConsistentRead: aws.Bool(true),
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(out.Item) == 0 {
		return nil, store.ErrNotFound
	}
	rec, err := decodeItem(out.Item)
	if err != nil {
		return nil, err
	}
	if rec.ID != id {
		return nil, fmt.Errorf("item for %q names %q: %w", id, rec.ID, store.ErrCorrupt)
	}
	return rec, nil
}

// Create implements [store.Store.Create] with a PutItem conditioned on attribute_not_exists(id),
// sent to the write endpoint only.
func (s *Store) Create(ctx context.Context, rec *store.Record) error {
	if err := store.CheckRecord(rec); err != nil {
		return fmt.Errorf("create key record: %w", err)
	}
	rev := store.NewRevision() // retries of this PutItem send the same item
	item := encodeItem(rec, rev)
	c := s.clients[0]
	err := s.call(ctx, c, func(ctx context.Context) error {
		_, err := c.db.PutItem(ctx, &dynamodb.PutItemInput{
			TableName:                aws.String(s.table),
			Item:                     item,
			ConditionExpression:      aws.String("attribute_not_exists(#id)"),
			ExpressionAttributeNames: map[string]string{"#id": attrID},
		})
		return err
	})
	if errors.Is(err, errConditionFailed) {
		return fmt.Errorf("create key record %q: %w", rec.ID, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create key record %q: %w", rec.ID, err)
	}
	rec.Revision = rev
	return nil
}

// Update implements [store.Store.Update] with a PutItem conditioned on rev = rec.Revision, sent
// to the write endpoint only. When the condition fails, a consistent read tells ErrNotFound from
// ErrConflict.
func (s *Store) Update(ctx context.Context, rec *store.Record) error {
	if err := store.CheckRecord(rec); err != nil {
		return fmt.Errorf("update key record: %w", err)
	}
	next, err := store.NextRevision(rec.Revision)
	if err != nil {
		return fmt.Errorf("update key record %q: %w", rec.ID, err)
	}
	item := encodeItem(rec, next)
	c := s.clients[0]
	err = s.call(ctx, c, func(ctx context.Context) error {
		_, err := c.db.PutItem(ctx, &dynamodb.PutItemInput{
			TableName:                 aws.String(s.table),
			Item:                      item,
			ConditionExpression:       aws.String("#rev = :rev"),
			ExpressionAttributeNames:  map[string]string{"#rev": attrRev},
			ExpressionAttributeValues: map[string]types.AttributeValue{":rev": attrN(rec.Revision)},
		})
		return err
	})
	if errors.Is(err, errConditionFailed) {
		return fmt.Errorf("update key record %q at revision %d: %w", rec.ID, rec.Revision, s.classifyFailedUpdate(ctx, rec.ID))
	}
	if err != nil {
		return fmt.Errorf("update key record %q: %w", rec.ID, err)
	}
	rec.Revision = next
	return nil
}

// classifyFailedUpdate reads the record after a failed revision condition: absent means
// ErrNotFound, anything else (present, or the read failed) ErrConflict, which makes the caller
// re-read.
func (s *Store) classifyFailedUpdate(ctx context.Context, id string) error {
	_, err := s.getFrom(ctx, s.clients[0], id)
	if errors.Is(err, store.ErrNotFound) {
		return store.ErrNotFound
	}
	return store.ErrConflict
}

// Delete implements [store.Store.Delete] with a DeleteItem conditioned on attribute_exists(id),
// sent to the write endpoint only.
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := store.CheckID(id); err != nil {
		return fmt.Errorf("delete key record: %w", err)
	}
	c := s.clients[0]
	err := s.call(ctx, c, func(ctx context.Context) error {
		_, err := c.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
			TableName:                aws.String(s.table),
			Key:                      keyOf(id),
			ConditionExpression:      aws.String("attribute_exists(#id)"),
			ExpressionAttributeNames: map[string]string{"#id": attrID},
		})
		return err
	})
	if errors.Is(err, errConditionFailed) {
		return fmt.Errorf("delete key record %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("delete key record %q: %w", id, err)
	}
	return nil
}

// List implements [store.Store.List] with a consistent Scan of opts.Limit items from the
// cursor, on the first endpoint and, only if it is unavailable, the next ones (the cursor is a
// key, valid on every replica). Each page is sorted by id; across pages the order is the
// table's scan order (see the package doc).
func (s *Store) List(ctx context.Context, opts store.ListOptions) (store.ListPage, error) {
	if err := store.CheckListOptions(opts); err != nil {
		return store.ListPage{}, fmt.Errorf("list key records: %w", err)
	}
	in := &dynamodb.ScanInput{
		TableName:                aws.String(s.table),
		ConsistentRead:           aws.Bool(true),
		Limit:                    aws.Int32(int32(opts.Limit)),
		ProjectionExpression:     aws.String("#id, #del"),
		ExpressionAttributeNames: map[string]string{"#id": attrID, "#del": attrDeleted},
	}
	if opts.After != "" {
		in.ExclusiveStartKey = keyOf(opts.After)
	}
	if opts.Prefix != "" {
		in.FilterExpression = aws.String("begins_with(#id, :prefix)")
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":prefix": attrS(opts.Prefix)}
	}
	var errs []error
	for _, c := range s.clients {
		var out *dynamodb.ScanOutput
		err := s.call(ctx, c, func(ctx context.Context) error {
			var err error
			out, err = c.db.Scan(ctx, in)
			return err
		})
		switch {
		case err == nil:
			return pageOf(out)
		case !errors.Is(err, store.ErrUnavailable) || ctx.Err() != nil:
			return store.ListPage{}, fmt.Errorf("list key records: %w", err)
		}
		errs = append(errs, err)
	}
	return store.ListPage{}, fmt.Errorf("list key records: all %d endpoints failed: %w", len(errs), errors.Join(errs...))
}

// pageOf turns a Scan answer into a page sorted by id.
func pageOf(out *dynamodb.ScanOutput) (store.ListPage, error) {
	var page store.ListPage
	for _, item := range out.Items {
		id, err := getS(item, attrID, true)
		if err != nil {
			return store.ListPage{}, fmt.Errorf("list key records: %w", err)
		}
		deleted, err := getS(item, attrDeleted, false)
		if err != nil {
			return store.ListPage{}, fmt.Errorf("list key records: item %q: %w", id, err)
		}
		page.Entries = append(page.Entries, store.ListEntry{ID: id, Deleted: deleted != ""})
	}
	slices.SortFunc(page.Entries, func(a, b store.ListEntry) int { return strings.Compare(a.ID, b.ID) })
	if len(out.LastEvaluatedKey) > 0 {
		next, err := getS(out.LastEvaluatedKey, attrID, true)
		if err != nil {
			return store.ListPage{}, fmt.Errorf("list key records: last evaluated key: %w", err)
		}
		page.Next = next
	}
	return page, nil
}

// Ping implements [store.Store.Ping]: it succeeds when any endpoint answers an eventually
// consistent GetItem of a reserved id on the table, the same reach that Get's fallback needs.
func (s *Store) Ping(ctx context.Context) error {
	var errs []error
	for _, c := range s.clients {
		err := s.call(ctx, c, func(ctx context.Context) error {
			_, err := c.db.GetItem(ctx, &dynamodb.GetItemInput{
				TableName:                aws.String(s.table),
				Key:                      keyOf(pingID),
				ProjectionExpression:     aws.String("#id"),
				ExpressionAttributeNames: map[string]string{"#id": attrID},
			})
			return err
		})
		if err == nil {
			return nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("ping key store: %w", errors.Join(errs...))
}

// Close makes later calls fail with [store.ErrUnavailable] and closes idle connections.
func (s *Store) Close() error {
	s.closed.Store(true)
	for _, tr := range s.transports {
		tr.CloseIdleConnections()
	}
	return nil
}
