package chaos

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/store/dynamodb"
)

// TestConcurrentCreate: four rkms processes sharing dynalite and three regions create the same
// ids at the same moment through the admin API. First write wins in the store, so every process
// must hand out the winner's key: the same bytes for an id from every process, one version.
func TestConcurrentCreate(t *testing.T) {
	testenv.Integration(t)
	const procs, workersPerProc = 4, 4
	n := *idsFlag
	b := startBackend(t)
	reps := make([]*replica, procs)
	for i := range reps {
		// No creation rate limit: this test is about agreement under races, not about the budget.
		reps[i] = b.newReplica(t, fmt.Sprintf("rkms-%d", i+1), replicaOptions{cacheTTL: time.Minute, kms: "  create_rate: -1\n"})
	}
	var wg sync.WaitGroup
	for _, r := range reps { // start in parallel: the four race on creating the table, too
		wg.Go(r.start)
	}
	wg.Wait()
	for _, r := range reps {
		r.waitReady(60 * time.Second)
	}

	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("race-%04d", i)
	}
	// keys[p][i] is process p's answer for ids[i].
	keys := make([][]string, procs)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := make(chan struct{})
	type failure struct {
		proc, id string
		status   int
		err      error
	}
	var mu sync.Mutex
	var failures []failure
	for p, r := range reps {
		keys[p] = make([]string, n)
		// Every process walks the ids in the same order, so each id is wanted by all four at
		// about the same time: most creations are real races.
		next := make(chan int)
		go func() {
			<-start
			defer close(next)
			for i := range ids {
				select {
				case next <- i:
				case <-ctx.Done():
					return
				}
			}
		}()
		for range workersPerProc {
			wg.Go(func() {
				for i := range next {
					key, _, status, err := r.key(ctx, ids[i])
					// A transient 503 (a KMS or store call slower than its deadline on a busy
					// machine) is retried: the assertion is on agreement, not latency.
					for try := 0; key == "" && try < 5 && ctx.Err() == nil; try++ {
						time.Sleep(100 * time.Millisecond)
						key, _, status, err = r.key(ctx, ids[i])
					}
					if key == "" {
						mu.Lock()
						failures = append(failures, failure{r.name, ids[i], status, err})
						mu.Unlock()
						continue
					}
					keys[p][i] = key
				}
			})
		}
	}
	began := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(began)
	if len(failures) > 0 {
		t.Fatalf("%d GET /key calls failed, first: %+v", len(failures), failures[0])
	}

	disagree := 0
	for i, id := range ids {
		for p := 1; p < procs; p++ {
			if keys[p][i] != keys[0][i] {
				disagree++
				if disagree <= 5 {
					t.Errorf("id %s: %s and %s returned different keys", id, reps[0].name, reps[p].name)
				}
			}
		}
	}
	st, err := dynamodb.New(context.Background(), dynamodb.Config{Table: "rkms_keys", Region: "us-east-1",
		Endpoints: []string{b.db.Endpoint}}, testenv.AWSConfig(t, "us-east-1"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, id := range ids {
		rec, err := st.Get(context.Background(), id)
		if err != nil {
			t.Fatalf("store record %s: %v", id, err)
		}
		if len(rec.Versions) != 1 || rec.Current != 1 {
			t.Errorf("record %s has %d versions (current %d), want exactly one", id, len(rec.Versions), rec.Current)
		}
	}
	// The replicas' output reaches the test through pipes copied in the background: on a busy
	// machine the last lines may still be on their way, so wait for them (briefly) before
	// counting; more than n is a failure at once.
	created := 0
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		created = 0
		for _, r := range reps {
			created += len(r.logLines("key created"))
		}
		if created >= n || time.Now().After(deadline) {
			break
		}
	}
	if created != n {
		t.Errorf("%d creations won the first write across the processes, want %d (one per id)", created, n)
	}
	t.Logf("%d processes x %d ids: %d GET /key calls in %s (%.0f/s), all agree; %d records, one version each",
		procs, n, procs*n, elapsed.Round(time.Millisecond), float64(procs*n)/elapsed.Seconds(), n)
}
