package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rkms/rkms/store"
)

// measuredStore times and counts every call of a wrapped store.Store.
type measuredStore struct {
	store.Store
	m                                    *Metrics
	get, create, update, del, ping, list prometheus.Observer
}

var _ store.Store = (*measuredStore)(nil)

// WrapStore returns s with its calls measured: latency per operation and errors by class.
// Close is passed through unmeasured.
func (m *Metrics) WrapStore(s store.Store) store.Store {
	for _, op := range []string{"get", "create", "update", "delete", "ping", "list"} {
		for _, class := range storeClasses {
			m.storeErrors.WithLabelValues(op, class)
		}
	}
	return &measuredStore{Store: s, m: m,
		get:    m.storeLatency.WithLabelValues("get"),
		create: m.storeLatency.WithLabelValues("create"),
		update: m.storeLatency.WithLabelValues("update"),
		del:    m.storeLatency.WithLabelValues("delete"),
		ping:   m.storeLatency.WithLabelValues("ping"),
		list:   m.storeLatency.WithLabelValues("list"),
	}
}

func (s *measuredStore) Get(ctx context.Context, id string) (*store.Record, error) {
	start := time.Now()
	rec, err := s.Store.Get(ctx, id)
	s.done(s.get, "get", start, err)
	return rec, err
}

func (s *measuredStore) Create(ctx context.Context, rec *store.Record) error {
	start := time.Now()
	err := s.Store.Create(ctx, rec)
	s.done(s.create, "create", start, err)
	return err
}

func (s *measuredStore) Update(ctx context.Context, rec *store.Record) error {
	start := time.Now()
	err := s.Store.Update(ctx, rec)
	s.done(s.update, "update", start, err)
	return err
}

func (s *measuredStore) Delete(ctx context.Context, id string) error {
	start := time.Now()
	err := s.Store.Delete(ctx, id)
	s.done(s.del, "delete", start, err)
	return err
}

func (s *measuredStore) List(ctx context.Context, opts store.ListOptions) (store.ListPage, error) {
	start := time.Now()
	page, err := s.Store.List(ctx, opts)
	s.done(s.list, "list", start, err)
	return page, err
}

func (s *measuredStore) Ping(ctx context.Context) error {
	start := time.Now()
	err := s.Store.Ping(ctx)
	s.done(s.ping, "ping", start, err)
	return err
}

func (s *measuredStore) done(lat prometheus.Observer, op string, start time.Time, err error) {
	lat.Observe(time.Since(start).Seconds())
	if err != nil {
		s.m.storeErrors.WithLabelValues(op, storeClass(err)).Inc()
	}
}

// storeClasses are the values of rkms_store_errors_total's class label.
var storeClasses = []string{"not_found", "exists", "conflict", "unavailable", "invalid", "corrupt", "canceled", "other"}

func storeClass(err error) string {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return "not_found"
	case errors.Is(err, store.ErrExists):
		return "exists"
	case errors.Is(err, store.ErrConflict):
		return "conflict"
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return "unavailable"
	case errors.Is(err, store.ErrInvalid):
		return "invalid"
	case errors.Is(err, store.ErrCorrupt):
		return "corrupt"
	case errors.Is(err, context.Canceled):
		return "canceled"
	default:
		return "other"
	}
}
