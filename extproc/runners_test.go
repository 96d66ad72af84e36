package extproc

import (
	"sync"
	"testing"
	"time"
)

// blockingJob is served until release is closed; served is closed when serve starts.
type blockingJob struct {
	served, release chan struct{}
}

func newJob() *blockingJob {
	return &blockingJob{served: make(chan struct{}), release: make(chan struct{})}
}

func (j *blockingJob) serve() {
	close(j.served)
	<-j.release
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRunnersReuse: a runner that finished a job takes the next one instead of a new goroutine
// being started, and no more than maxIdle wait at once.
func TestRunnersReuse(t *testing.T) {
	var rs runners
	rs.init(2, time.Minute)

	j := newJob()
	rs.start(j)
	<-j.served
	close(j.release)
	waitFor(t, "the runner to wait for work", func() bool { return rs.idle.Load() == 1 })
	for range 10 { // each job goes to the waiting runner: never more than one goroutine
		j := newJob()
		// handoff fails while the runner is between finishing and waiting (start would then
		// start a new runner); it succeeds once the runner waits.
		waitFor(t, "the runner to take a job", func() bool { return rs.handoff(j) })
		<-j.served
		if n := rs.live.Load(); n != 1 {
			t.Fatalf("%d runners serving one job at a time, want 1", n)
		}
		close(j.release)
		waitFor(t, "the runner to wait again", func() bool { return rs.idle.Load() == 1 })
	}

	jobs := make([]*blockingJob, 5) // 5 at once: one on the runner, 4 on new goroutines
	for i := range jobs {
		jobs[i] = newJob()
		rs.start(jobs[i])
		<-jobs[i].served
	}
	for _, j := range jobs {
		close(j.release)
	}
	waitFor(t, "the runners beyond maxIdle to end", func() bool { return rs.live.Load() == 2 })
	if n := rs.idle.Load(); n != 2 {
		t.Errorf("%d runners waiting, want maxIdle = 2", n)
	}
}

// TestRunnersIdleTimeout: a runner with no job for idleFor ends, and a job started after that
// still runs (on a new goroutine).
func TestRunnersIdleTimeout(t *testing.T) {
	var rs runners
	rs.init(4, 10*time.Millisecond)
	var wg sync.WaitGroup
	for range 3 {
		j := newJob()
		wg.Go(func() { rs.start(j); <-j.served; close(j.release) })
	}
	wg.Wait()
	waitFor(t, "idle runners to end", func() bool { return rs.live.Load() == 0 && rs.idle.Load() == 0 })
	j := newJob()
	rs.start(j)
	select {
	case <-j.served:
	case <-time.After(5 * time.Second):
		t.Fatal("a job started after the runners ended was never served")
	}
	close(j.release)
}
