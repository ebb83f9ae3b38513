package scheduler

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/ent/task"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/loop"
)

// backlogTTL bounds how long a pending-task count read from the database
// is reused by backpressure. Counting pending tasks twice per submission
// (per model and in total) was the largest cost of intake under load and
// grows with the backlog; backpressure is a soft limit that only has to
// stop a queue growing without bound, so a count at most backlogTTL old,
// plus the tasks this process accepted since, is enough.
const backlogTTL = 250 * time.Millisecond

type backlogCount struct {
	n          int           // pending tasks when read
	at         time.Time     // when read (its start)
	took       time.Duration // how long the read's statements took
	statements int           // how many statements it took
	added      int           // tasks this process accepted since
	reading    bool          // a refresh is in flight
}

// refreshAfter is how long a count that lets submissions in is used
// before one background read refreshes it: backlogTTL, or for a count that
// is costly (a large backlog) fifty times what it took, so that counting
// takes at most about a fiftieth of the database's time however fast tasks
// arrive. With a million pending tasks the total took 0.3-0.5 s: refreshed
// every backlogTTL, one COUNT was always running and batch intake fell to a
// third of an empty queue's; refreshed every ten times its cost, a COUNT
// ran a tenth of the time, and one single submission in ten waited behind
// it (idle pickup p95 at 100,000 pending: 9-12 ms against 5-6 ms empty).
// What other api processes accepted since shows only at the next read, so
// with several of them a queue that filled up is noticed up to that much
// later (at a million pending, 15-25 s): backpressure is a soft limit.
func (c *backlogCount) refreshAfter() time.Duration { return max(backlogTTL, 50*c.took) }

// refuseWithin is how old a count may be for a refusal: an older one that
// would refuse is read again first, so a queue that has drained stops
// refusing within ten times what its count costs.
func (c *backlogCount) refuseWithin() time.Duration { return max(backlogTTL, 10*c.took) }

// stale is how old the count may be and still answer at once.
func (c *backlogCount) stale() time.Duration { return max(backlogStale, 150*c.took) }

// backlogStale bounds how old a count may be and still answer at once
// while a fresh one is read in the background. Past it, submissions wait
// for the database again (after an idle spell, say).
const backlogStale = 5 * time.Second

// backlog caches pending-task counts per model (key: model id) and in
// total (key 0).
type backlog struct {
	db  *ent.Client
	bg  *background
	log *slog.Logger
	mu  sync.Mutex
	m   map[int]*backlogCount
	// rest waits between the statements of a sliced count.
	rest func(ctx context.Context, d time.Duration) error
}

func newBacklog(db *ent.Client, bg *background, log *slog.Logger) *backlog {
	return &backlog{db: db, bg: bg, log: log, m: map[int]*backlogCount{}, rest: loop.Sleep}
}

// pending returns the (recent) number of pending tasks for key. A count
// that lets the submission in (fits) and is not stale answers at once;
// past refreshAfter one background read refreshes it: submissions never
// queue behind the COUNT, which grows with the backlog, and concurrent
// ones never run it side by side. A refusal is only ever made on a count
// within refuseWithin (plus what this process accepted since).
func (b *backlog) pending(ctx context.Context, key int, fits func(n int) bool) (int, error) {
	b.mu.Lock()
	if c := b.m[key]; c != nil {
		age, n := time.Since(c.at), c.n+c.added
		fit := fits(n)
		if (fit && age < c.stale()) || (!fit && age < c.refuseWithin()) {
			if fit && age >= c.refreshAfter() && !c.reading {
				// After Service.Close no refresh starts: the count
				// answers until it is stale, then the caller reads.
				c.reading = b.bg.spawn(func() { b.refresh(b.bg.ctx, key, c) })
			}
			b.mu.Unlock()
			return n, nil
		}
	}
	b.mu.Unlock()
	return b.read(ctx, key)
}

// countSlice bounds how many pending tasks one statement of a sliced count
// reads (readSliced).
var countSlice = 10_000

// sliceAbove is how long a count must have taken for its refresh to be
// sliced: a few milliseconds of work are not worth more statements.
const sliceAbove = 20 * time.Millisecond

// refresh reads the count for key in the background, sliced when it is
// costly; on failure the stale entry c may start another refresh.
func (b *backlog) refresh(ctx context.Context, key int, c *backlogCount) {
	read := b.read
	if c.took >= sliceAbove {
		read = b.readSliced
	}
	if _, err := read(ctx, key); err != nil {
		if ctx.Err() == nil {
			b.log.Warn("refresh pending-task count", "model_id", key, "err", err)
		}
		b.mu.Lock()
		c.reading = false
		b.mu.Unlock()
	}
}

// read counts pending tasks for key in the database and caches the count.
func (b *backlog) read(ctx context.Context, key int) (int, error) {
	q := b.db.Task.Query().Where(task.StatusEQ(domain.StatusPending))
	if key != 0 {
		q = q.Where(task.ModelID(key))
	}
	now := time.Now()
	n, err := q.Count(ctx)
	if err != nil {
		return 0, dbErr(err, "model", key)
	}
	b.mu.Lock()
	b.m[key] = &backlogCount{n: n, at: now, took: time.Since(now), statements: 1}
	b.mu.Unlock()
	return n, nil
}

// readSliced counts pending tasks for key like read, in statements that
// each read at most countSlice of one model's tasks (a range of the index
// on status and model, in id order), and rests as long as each statement
// took before the next: the database never spends more than half of one
// thread on it, and never for longer than a slice at a time. One COUNT of
// a million pending tasks took 0.3-0.5 s of a core in one go, and the
// single submissions that ran beside it took two to three times as long
// to be picked up.
//
// The tasks this process accepts while it counts are carried over, as if
// none of them had been counted: a count a little high makes a refusal
// read it again at once (refuseWithin), one too low would let a full
// queue grow.
func (b *backlog) readSliced(ctx context.Context, key int) (int, error) {
	models := []int{key}
	if key == 0 {
		// The models with pending tasks: a jump per model along an
		// index that starts with (model_id, status) on MySQL.
		ids, err := b.db.Task.Query().Where(task.StatusEQ(domain.StatusPending)).Unique(true).
			Select(task.FieldModelID).Ints(ctx)
		if err != nil {
			return 0, dbErr(err, "model", key)
		}
		models = ids
	}
	b.mu.Lock()
	was, before := b.m[key], 0
	if was != nil {
		before = was.added
	}
	b.mu.Unlock()
	start := time.Now()
	counted := backlogCount{at: start}
	for _, m := range models {
		for after := 0; ; {
			t0 := time.Now()
			q := b.db.Task.Query().Where(task.StatusEQ(domain.StatusPending), task.ModelID(m), task.IDGT(after))
			edge, err := q.Clone().Order(ent.Asc(task.FieldID)).Offset(countSlice - 1).Limit(1).IDs(ctx)
			if err != nil {
				return 0, dbErr(err, "model", key)
			}
			counted.statements++
			if len(edge) == 1 {
				counted.n += countSlice
				after = edge[0]
			} else {
				left, err := q.Count(ctx)
				if err != nil {
					return 0, dbErr(err, "model", key)
				}
				counted.statements++
				counted.n += left
			}
			took := time.Since(t0)
			counted.took += took
			if err := b.rest(ctx, took); err != nil {
				return 0, err
			}
			if len(edge) == 0 {
				break
			}
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch c := b.m[key]; {
	case c == nil:
	case c.at.After(start):
		// A read that started later answered meanwhile.
		return c.n + c.added, nil
	case c == was:
		counted.added = c.added - before
	default:
		// One that started earlier answered meanwhile: everything
		// accepted since it started.
		counted.added = c.added
	}
	b.m[key] = &counted
	return counted.n + counted.added, nil
}

// reserve counts tasks this process is about to insert.
func (b *backlog) reserve(modelID, adding int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, k := range [2]int{modelID, 0} {
		if c := b.m[k]; c != nil {
			c.added += adding
		}
	}
}
