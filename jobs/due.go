package jobs

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/llmsched/llm-scheduler/internal/loop"
	"github.com/llmsched/llm-scheduler/internal/scheduler"
)

// DueScanner admits scheduled tasks (run_at / delay_seconds) when they come
// due. Every process runs one: each looks in the database every
// queue.schedule_check_interval and, in between, sleeps exactly until the
// next run_at it knows of (from its last look, or from a task this process
// just scheduled). The database holds the schedule, so restarts and Redis
// flushes lose nothing; scheduler.Tasks.AdmitDue's fenced claim makes one
// process admit each task.
type DueScanner struct {
	svc      *scheduler.Tasks
	interval time.Duration
	log      *slog.Logger

	loop loop.Loop // runs run between Start and Stop

	mu       sync.Mutex
	earliest time.Time // the earliest run_at noted since the last look
	noted    chan struct{}
}

// NewDueScanner builds a due scanner and subscribes it to the tasks the
// service schedules.
func NewDueScanner(svc *scheduler.Tasks, interval time.Duration, log *slog.Logger) *DueScanner {
	d := &DueScanner{svc: svc, interval: interval, log: log, noted: make(chan struct{}, 1)}
	svc.OnScheduled(d.note)
	return d
}

// note learns of a task scheduled by this process.
func (d *DueScanner) note(at time.Time) {
	d.mu.Lock()
	if d.earliest.IsZero() || at.Before(d.earliest) {
		d.earliest = at
	}
	d.mu.Unlock()
	select {
	case d.noted <- struct{}{}:
	default:
	}
}

// takeNoted returns and forgets the earliest noted run_at.
func (d *DueScanner) takeNoted() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	at := d.earliest
	d.earliest = time.Time{}
	return at
}

// Start starts admitting due tasks in a goroutine of the scanner's own,
// until Stop.
func (d *DueScanner) Start(ctx context.Context) error { return d.loop.Start(ctx, d.run) }

// Stop stops the scanner and waits for its goroutine to end, or for ctx
// to end.
func (d *DueScanner) Stop(ctx context.Context) error { return d.loop.Stop(ctx) }

// run admits due tasks until ctx ends.
func (d *DueScanner) run(ctx context.Context) {
	timer := time.NewTimer(0) // a look at start: tasks that came due while no process ran
	defer timer.Stop()
	deadline := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.noted:
			if at := d.takeNoted(); !at.IsZero() && at.Before(deadline) {
				timer.Reset(max(time.Until(at), 0))
				deadline = at
			}
			continue
		case <-timer.C:
		}
		n, next, err := d.svc.AdmitDue(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			d.log.Warn("due scanner: admitting scheduled tasks failed; trying again", "err", err)
		case n > 0:
			d.log.Debug("due scanner: admitted scheduled tasks", "tasks", n)
		}
		deadline = time.Now().Add(d.interval)
		if !next.IsZero() && next.Before(deadline) {
			deadline = next
		}
		if at := d.takeNoted(); !at.IsZero() && at.Before(deadline) {
			deadline = at
		}
		timer.Reset(max(time.Until(deadline), 0))
	}
}
