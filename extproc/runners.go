package extproc

import (
	"sync/atomic"
	"time"
)

// Streams are served on goroutines kept between streams (runners) rather than on a new
// goroutine each: a new goroutine starts with a small stack, and decoding an Envoy message's
// metadata (nested Struct maps, through reflection) grows it at every stream; in profiles under
// load that copying was about 5 % of rkms's CPU. A runner that finishes a stream waits for the
// next one for runnerIdle, and at most maxIdleRunners wait at once; beyond that, or when none
// is waiting, a stream gets a new goroutine as before.
const (
	maxIdleRunners = 64
	runnerIdle     = 10 * time.Second
)

// job is what a runner serves: a stream's loop (*run).
type job interface{ serve() }

// runners hands streams to idle runners. The zero value is not usable: see newRunners.
type runners struct {
	work    chan job     // unbuffered: a send succeeds only when a runner is waiting
	idle    atomic.Int32 // runners waiting on work
	live    atomic.Int32 // runners, serving or waiting
	maxIdle int32
	idleFor time.Duration
}

func (rs *runners) init(maxIdle int32, idleFor time.Duration) {
	rs.work, rs.maxIdle, rs.idleFor = make(chan job), maxIdle, idleFor
}

// start serves j on a waiting runner, or on a new one.
func (rs *runners) start(j job) {
	if !rs.handoff(j) {
		rs.live.Add(1)
		go rs.runner(j)
	}
}

// handoff gives j to a waiting runner, if one is waiting.
func (rs *runners) handoff(j job) bool {
	select {
	case rs.work <- j:
		return true
	default:
		return false
	}
}

// runner serves j, then the jobs handed to it, until it has waited idleFor for one or enough
// runners are waiting already.
func (rs *runners) runner(j job) {
	defer rs.live.Add(-1)
	var idle *time.Timer
	for {
		j.serve()
		j = nil // not kept alive while waiting
		if rs.idle.Add(1) > rs.maxIdle {
			rs.idle.Add(-1)
			return
		}
		if idle == nil {
			idle = time.NewTimer(rs.idleFor)
		} else {
			idle.Reset(rs.idleFor)
		}
		select {
		case j = <-rs.work:
			rs.idle.Add(-1)
			idle.Stop()
		case <-idle.C:
			// No job is lost: work is unbuffered, so a job sent once this runner stopped
			// waiting found no receiver here and went to a new runner.
			rs.idle.Add(-1)
			return
		}
	}
}
