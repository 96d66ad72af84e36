// Command slowtrace reads the Go execution traces that rkms's extproc.slow_trace wrote
// (rkms-slow-*.trace; cmd/rkms-load -slow-trace DIR) and says where each slow stream's time went:
// for the goroutine that served the stream (the one that began its rkms.extproc.stream task),
// the time running, runnable but not running (waiting for a P), waiting (by the runtime's
// reason: waiting for Envoy's next message is a channel or select wait in gRPC's receive path),
// and in system calls; the GC mark assist it did; and, over the stream's life, the
// stop-the-world pauses, the GC mark phase, the Ps' busy share and the mean number of runnable
// goroutines. Each slow stream is printed beside the median of every other complete stream in
// the same trace.
//
// It is its own module (golang.org/x/exp/trace reads the traces), so rkms does not depend on it:
//
//	cd internal/testing/load/slowtrace && go run . /tmp/traces/rkms-slow-*.trace
package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/exp/trace"
)

// The annotations of extproc/slowtrace.go.
const (
	taskStream = "rkms.extproc.stream"
	regionMsg  = "rkms.extproc.message"
	logSlow    = "rkms.slow_stream"
)

type span struct{ start, end trace.Time }

func (s span) overlap(o span) time.Duration {
	a, b := max(s.start, o.start), min(s.end, o.end)
	if b <= a {
		return 0
	}
	return time.Duration(b - a)
}

// gstate is one interval of a goroutine in one state.
type gstate struct {
	span
	state  trace.GoState
	reason string
	by     trace.GoID // the goroutine that made this transition (the waker, for Waiting -> Runnable)
}

type task struct {
	id      trace.TaskID
	g       trace.GoID
	life    span
	ended   bool
	slow    string        // the logged duration, for slow streams
	handled time.Duration // inside message regions
	regions int
	starts  []trace.Time // each message region's start
}

type analysis struct {
	tasks     map[trace.TaskID]*task
	gs        map[trace.GoID][]gstate
	gLast     map[trace.GoID]gstate // current state since
	stw, mark []span
	assist    map[trace.GoID][]span
	procBusy  []span
	procLast  map[trace.ProcID]trace.Time
	runnable  []span                // every runnable interval of every goroutine
	open      map[string]trace.Time // ranges begun, by rangeKey
	regionAt  map[trace.GoID]trace.Time
	first     trace.Time
	last      trace.Time
}

// rangeKey names a range by its scope and name, so that its end finds its beginning.
func rangeKey(rg trace.Range) string { return fmt.Sprintf("%v/%s", rg.Scope, rg.Name) }

func read(name string) (*analysis, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := trace.NewReader(f)
	if err != nil {
		return nil, err
	}
	a := &analysis{tasks: map[trace.TaskID]*task{}, gs: map[trace.GoID][]gstate{}, gLast: map[trace.GoID]gstate{},
		assist: map[trace.GoID][]span{}, procLast: map[trace.ProcID]trace.Time{}, open: map[string]trace.Time{},
		regionAt: map[trace.GoID]trace.Time{}}
	for {
		ev, err := r.ReadEvent()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		t := ev.Time()
		if a.first == 0 {
			a.first = t
		}
		a.last = t
		switch ev.Kind() {
		case trace.EventTaskBegin:
			if tk := ev.Task(); tk.Type == taskStream {
				a.tasks[tk.ID] = &task{id: tk.ID, g: ev.Goroutine(), life: span{start: t}}
			}
		case trace.EventTaskEnd:
			if tk, ok := a.tasks[ev.Task().ID]; ok {
				tk.life.end, tk.ended = t, true
			}
		case trace.EventRegionBegin:
			if rg := ev.Region(); rg.Type == regionMsg {
				a.regionAt[ev.Goroutine()] = t
				if tk, ok := a.tasks[rg.Task]; ok {
					tk.starts = append(tk.starts, t)
				}
			}
		case trace.EventRegionEnd:
			rg := ev.Region()
			if tk, ok := a.tasks[rg.Task]; ok && rg.Type == regionMsg {
				if s, ok := a.regionAt[ev.Goroutine()]; ok {
					tk.handled += time.Duration(t - s)
					tk.regions++
				}
			}
		case trace.EventLog:
			if l := ev.Log(); l.Category == logSlow {
				if tk, ok := a.tasks[l.Task]; ok {
					tk.slow = l.Message
				}
			}
		case trace.EventRangeBegin, trace.EventRangeActive:
			rg := ev.Range()
			a.open[rangeKey(rg)] = t
		case trace.EventRangeEnd:
			rg := ev.Range()
			s, ok := a.open[rangeKey(rg)]
			if !ok {
				break // began before the window
			}
			delete(a.open, rangeKey(rg))
			switch {
			case rg.Scope.Kind == trace.ResourceGoroutine && rg.Name == "GC mark assist":
				a.assist[rg.Scope.Goroutine()] = append(a.assist[rg.Scope.Goroutine()], span{s, t})
			case strings.HasPrefix(rg.Name, "stop-the-world"):
				a.stw = append(a.stw, span{s, t})
			case rg.Name == "GC concurrent mark phase":
				a.mark = append(a.mark, span{s, t})
			}
		case trace.EventStateTransition:
			st := ev.StateTransition()
			switch st.Resource.Kind {
			case trace.ResourceGoroutine:
				g := st.Resource.Goroutine()
				_, to := st.Goroutine()
				if prev, ok := a.gLast[g]; ok {
					prev.end = t
					a.gs[g] = append(a.gs[g], prev)
					if prev.state == trace.GoRunnable {
						a.runnable = append(a.runnable, prev.span)
					}
				}
				a.gLast[g] = gstate{span: span{start: t}, state: to, reason: st.Reason, by: ev.Goroutine()}
			case trace.ResourceProc:
				p := st.Resource.Proc()
				from, to := st.Proc()
				if to.Executing() && !from.Executing() {
					a.procLast[p] = t
				} else if from.Executing() && !to.Executing() {
					if s, ok := a.procLast[p]; ok {
						a.procBusy = append(a.procBusy, span{s, t})
						delete(a.procLast, p)
					}
				}
			}
		}
	}
	return a, nil
}

// breakdown is where one stream's life went.
type breakdown struct {
	life, handled, running, runnable, syscall, assist, stw, mark time.Duration
	waiting                                                      map[string]time.Duration
	procBusy                                                     float64 // share of GOMAXPROCS (2) busy
	meanRunnable                                                 float64
}

func (a *analysis) breakdown(tk *task, procs int) breakdown {
	b := breakdown{life: time.Duration(tk.life.end - tk.life.start), handled: tk.handled, waiting: map[string]time.Duration{}}
	for _, s := range a.gs[tk.g] {
		d := s.overlap(tk.life)
		if d == 0 {
			continue
		}
		switch s.state {
		case trace.GoRunning:
			b.running += d
		case trace.GoRunnable:
			b.runnable += d
		case trace.GoSyscall:
			b.syscall += d
		case trace.GoWaiting:
			b.waiting[s.reason] += d
		}
	}
	for _, s := range a.assist[tk.g] {
		b.assist += s.overlap(tk.life)
	}
	for _, s := range a.stw {
		b.stw += s.overlap(tk.life)
	}
	for _, s := range a.mark {
		b.mark += s.overlap(tk.life)
	}
	var busy, runnable time.Duration
	for _, s := range a.procBusy {
		busy += s.overlap(tk.life)
	}
	for _, s := range a.runnable {
		runnable += s.overlap(tk.life)
	}
	if b.life > 0 {
		b.procBusy = float64(busy) / float64(b.life) / float64(procs)
		b.meanRunnable = float64(runnable) / float64(b.life)
	}
	return b
}

// longestWait describes the slow goroutine's longest wait in the stream's life and what the
// goroutine that ended it (gRPC's transport reader, for a message from Envoy) did meanwhile: in
// "IO wait" for the whole gap, the bytes had not reached the process; runnable, they had but
// were not read for lack of a P or an OS thread.
func (a *analysis) longestWait(tk *task) string {
	list := a.gs[tk.g]
	best := -1
	for i, s := range list {
		if s.state == trace.GoWaiting && s.overlap(tk.life) > 0 && (best < 0 || s.end-s.start > list[best].end-list[best].start) {
			best = i
		}
	}
	if best < 0 || best+1 >= len(list) {
		return "no wait"
	}
	w, next := list[best], list[best+1]
	waker := next.by
	before := 0 // messages handled before the wait ended: the wait was for message before+1
	for _, st := range tk.starts {
		if st < w.end {
			before++
		}
	}
	out := fmt.Sprintf("longest wait %s ms (%q) before message %d of %d, woken by goroutine %d, which meanwhile was:",
		ms(time.Duration(w.end-w.start)), w.reason, before+1, len(tk.starts), waker)
	if waker == tk.g || waker == trace.NoGoroutine {
		return out + " (none: woken by the runtime)"
	}
	spent := map[string]time.Duration{}
	for _, s := range a.gs[waker] {
		if d := s.overlap(w.span); d > 0 {
			k := s.state.String()
			if s.state == trace.GoWaiting {
				k = "waiting " + fmt.Sprintf("%q", s.reason)
			}
			spent[k] += d
		}
	}
	var parts []string
	for k, d := range spent {
		parts = append(parts, fmt.Sprintf(" %s %s ms", k, ms(d)))
	}
	sort.Strings(parts)
	return out + strings.Join(parts, ",")
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/1e6) }

func (b breakdown) print(w io.Writer, label string) {
	var reasons []string
	for r, d := range b.waiting {
		if d >= b.life/100 {
			reasons = append(reasons, fmt.Sprintf("%q %s", r, ms(d)))
		}
	}
	sort.Strings(reasons)
	fmt.Fprintf(w, "  %-22s life %8s ms | handling msgs %6s | running %6s runnable %6s syscall %5s | waiting %s | mark assist %5s, STW %5s, GC mark phase %6s | Ps busy %3.0f%%, runnable goroutines %.1f\n",
		label, ms(b.life), ms(b.handled), ms(b.running), ms(b.runnable), ms(b.syscall), strings.Join(reasons, ", "),
		ms(b.assist), ms(b.stw), ms(b.mark), 100*b.procBusy, b.meanRunnable)
}

func median(bs []breakdown) breakdown {
	pick := func(f func(breakdown) time.Duration) time.Duration {
		v := make([]time.Duration, len(bs))
		for i, b := range bs {
			v[i] = f(b)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	pickF := func(f func(breakdown) float64) float64 {
		v := make([]float64, len(bs))
		for i, b := range bs {
			v[i] = f(b)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	m := breakdown{waiting: map[string]time.Duration{}}
	m.life = pick(func(b breakdown) time.Duration { return b.life })
	m.handled = pick(func(b breakdown) time.Duration { return b.handled })
	m.running = pick(func(b breakdown) time.Duration { return b.running })
	m.runnable = pick(func(b breakdown) time.Duration { return b.runnable })
	m.syscall = pick(func(b breakdown) time.Duration { return b.syscall })
	m.assist = pick(func(b breakdown) time.Duration { return b.assist })
	m.stw = pick(func(b breakdown) time.Duration { return b.stw })
	m.mark = pick(func(b breakdown) time.Duration { return b.mark })
	m.procBusy = pickF(func(b breakdown) float64 { return b.procBusy })
	m.meanRunnable = pickF(func(b breakdown) float64 { return b.meanRunnable })
	reasons := map[string]bool{}
	for _, b := range bs {
		for r := range b.waiting {
			reasons[r] = true
		}
	}
	for r := range reasons {
		m.waiting[r] = pick(func(b breakdown) time.Duration { return b.waiting[r] })
	}
	return m
}

func main() {
	procs := 2
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: slowtrace FILE.trace...")
		os.Exit(2)
	}
	for _, name := range os.Args[1:] {
		a, err := read(name)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
			continue
		}
		var others []breakdown
		var slow []*task
		for _, tk := range a.tasks {
			if !tk.ended {
				continue
			}
			if tk.slow != "" {
				slow = append(slow, tk)
			} else {
				others = append(others, a.breakdown(tk, procs))
			}
		}
		var stw time.Duration
		for _, s := range a.stw {
			stw += time.Duration(s.end - s.start)
		}
		fmt.Printf("%s: %.2f s of trace, %d complete streams, %d slow; GC cycles %d, STW total %s ms\n", name,
			float64(a.last-a.first)/1e9, len(others)+len(slow), len(slow), len(a.mark), ms(stw))
		if len(others) > 0 {
			median(others).print(os.Stdout, "median other stream")
		}
		slices.SortFunc(slow, func(x, y *task) int { return int(y.life.end - y.life.start - (x.life.end - x.life.start)) })
		for _, tk := range slow {
			a.breakdown(tk, procs).print(os.Stdout, "slow "+tk.slow)
			fmt.Printf("    %s\n", a.longestWait(tk))
		}
	}
}
