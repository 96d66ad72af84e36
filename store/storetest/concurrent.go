package storetest

import (
	"errors"
	"runtime"
	"sync"
	"testing"

	"github.com/rkms/rkms/store"
)

const (
	creators      = 16 // concurrent Creates of one id
	updaters      = 8  // concurrent compare-and-swap loops on one id
	updatesEach   = 5  // successful updates per loop
	maxCASRetries = 1000
)

// testConcurrentCreate races 16 Creates of one id with different contents: exactly one must win,
// the others must get ErrExists, and the stored record must be the winner's.
func testConcurrentCreate(t *testing.T, s store.Store, id string) {
	ctx := t.Context()
	var (
		start = make(chan struct{})
		wg    sync.WaitGroup
		errs  = make([]error, creators)
		recs  = make([]*store.Record, creators)
	)
	for i := range creators {
		recs[i] = sampleRecord(id, i)
		recs[i].Current = uint32(i + 1) // tells the winner apart
		wg.Go(func() {
			<-start
			errs[i] = s.Create(ctx, recs[i])
		})
	}
	close(start)
	wg.Wait()

	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("Creates %d and %d both won", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, store.ErrExists):
			t.Fatalf("Create %d = %v, want nil or ErrExists", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no Create won")
	}
	got, err := s.Get(ctx, id)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	requireEqual(t, recs[winner], got)
}

// testConcurrentUpdate runs several read-modify-write loops that each increment Current: with a
// correct compare-and-swap no increment is lost.
func testConcurrentUpdate(t *testing.T, s store.Store, id string) {
	ctx := t.Context()
	rec := sampleRecord(id, 1)
	rec.Current = 0
	if err := s.Create(ctx, rec); err != nil {
		t.Fatalf("Create: %v", err)
	}
	startRev := rec.Revision
	var (
		start = make(chan struct{})
		wg    sync.WaitGroup
		errs  = make([]error, updaters)
	)
	for i := range updaters {
		wg.Go(func() {
			<-start
			errs[i] = incrementLoop(t, s, id, updatesEach)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("updater %d: %v", i, err)
		}
	}
	got, err := s.Get(ctx, id)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if want := uint32(updaters * updatesEach); got.Current != want {
		t.Fatalf("Current = %d after %d increments: updates were lost", got.Current, want)
	}
	if want := startRev + updaters*updatesEach; got.Revision != want {
		t.Fatalf("Revision = %d after %d updates from %d, want %d", got.Revision, updaters*updatesEach, startRev, want)
	}
}

// incrementLoop increments the record's Current n times, retrying on ErrConflict.
func incrementLoop(t *testing.T, s store.Store, id string, n int) error {
	ctx := t.Context()
	for done, tries := 0, 0; done < n; tries++ {
		if tries > maxCASRetries {
			return errors.New("too many conflicts: no progress")
		}
		rec, err := s.Get(ctx, id)
		if err != nil {
			return err
		}
		rec.Current++
		runtime.Gosched() // widen the read-modify-write window so a missing CAS shows
		switch err := s.Update(ctx, rec); {
		case err == nil:
			done++
		case !errors.Is(err, store.ErrConflict):
			return err
		}
	}
	return nil
}
