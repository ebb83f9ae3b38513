package scheduler

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/llmsched/llm-scheduler/internal/gostack"
)

// group merges concurrent calls of one kind into batches (group commit):
// many tasks' inserts, reads or transitions then share one statement and
// one commit instead of paying a round trip and a commit each.
//
// It adds no waiting: a call that finds a lane free flushes at once with
// whatever is queued (alone on an idle system). Calls that arrive while
// every lane is busy queue up and go together in the next flush. Under load
// batches grow by themselves; at idle a call costs what it did before.
//
// A call always learns its own outcome: once queued it is flushed even if
// its context ends meanwhile, and the flush runs under a context of its own,
// so a write that happened is never reported as failed.
type group[In, Out any] struct {
	bg    *background // runs the hand-offs (drain)
	lanes int         // flushes in flight at most
	max   int         // items per flush at most
	// flush handles a batch; it returns one result per item, in order.
	flush func(ctx context.Context, ins []In) []result[Out]

	mu      sync.Mutex
	waiting []*call[In, Out]
	active  int
}

type result[Out any] struct {
	out Out
	err error
}

type call[In, Out any] struct {
	in   In
	res  result[Out]
	done chan struct{}
}

// flushTimeout bounds one flush: a batch holds the callers of many requests.
const flushTimeout = 30 * time.Second

func newGroup[In, Out any](bg *background, lanes, limit int, flush func(context.Context, []In) []result[Out]) *group[In, Out] {
	return &group[In, Out]{bg: bg, lanes: lanes, max: limit, flush: flush}
}

// do queues in and waits for the flush that handles it.
func (g *group[In, Out]) do(ctx context.Context, in In) (Out, error) {
	c := &call[In, Out]{in: in, done: make(chan struct{})}
	g.mu.Lock()
	g.waiting = append(g.waiting, c)
	lead := g.active < g.lanes
	if lead {
		g.active++
	}
	g.mu.Unlock()
	if lead {
		g.drain(context.WithoutCancel(ctx))
	}
	<-c.done
	return c.res.out, c.res.err
}

// drain flushes the next batch on a lane. The caller that took the lane
// runs it itself (an idle call costs no goroutine switch) and hands the
// lane to a goroutine if more calls queued meanwhile, so it returns after
// its own batch (a goroutine Service.Close waits for). Another lane may have taken every queued call already;
// then the lane is given back at once.
func (g *group[In, Out]) drain(ctx context.Context) {
	g.mu.Lock()
	if len(g.waiting) == 0 {
		g.active--
		g.mu.Unlock()
		return
	}
	n := min(len(g.waiting), g.max)
	batch := make([]*call[In, Out], n)
	copy(batch, g.waiting)
	g.waiting = append(g.waiting[:0], g.waiting[n:]...)
	g.mu.Unlock()

	g.run(ctx, batch)

	g.mu.Lock()
	more := len(g.waiting) > 0
	if !more {
		g.active--
	}
	g.mu.Unlock()
	// After Service.Close the caller drains the rest itself.
	if more && !g.bg.spawn(func() {
		gostack.Grow() // a flush runs deep (internal/gostack)
		g.drain(ctx)
	}) {
		g.drain(ctx)
	}
}

func (g *group[In, Out]) run(ctx context.Context, batch []*call[In, Out]) {
	fctx, cancel := context.WithTimeout(ctx, flushTimeout)
	defer cancel()
	ins := make([]In, len(batch))
	for i, c := range batch {
		ins[i] = c.in
	}
	res := g.flush(fctx, ins)
	for i, c := range batch {
		c.res = res[i]
		close(c.done)
	}
}

// The hot paths of a task's life (created, read at pickup, started,
// completed) go through groups: concurrent calls share one
// statement and one commit. Profiles of the bench showed the machine's CPU
// going to round trips, mostly the database's: per task eleven statements
// and three commits, each paid alone. Batched, a busy worker pays a few
// statements per batch instead, and an idle one exactly what it paid before.

// Each group keeps one flush in flight (one lane); calls that arrive
// meanwhile go together in the next. More lanes only cut the same calls
// into smaller batches, and on a busy machine a statement costs more than
// the wait for the flush ahead: on the bench, four read and eight write
// lanes completed 0.40x of the raw-asynq baseline, two write lanes 0.54x,
// one lane 0.63x (docs/performance.md).
const (
	groupLanes = 1
	groupMax   = 200
)

// failAll gives every item of a batch the same error.
func failAll[Out any](n int, err error) []result[Out] {
	res := make([]result[Out], n)
	for i := range res {
		res[i].err = err
	}
	return res
}

// errPartial rolls back a batch whose fenced update did not match every
// row: some task changed since its worker read it. The batch then runs
// item by item, where each item learns exactly what happened to it.
var errPartial = errors.New("batch matched only part of its rows")
