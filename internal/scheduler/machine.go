package scheduler

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/ent/predicate"
	"github.com/llmsched/llm-scheduler/ent/task"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/events"
)

// machine is the task state machine every part writes through: each status
// change is one conditional update (Transition), published on the bus, and
// a terminal one of a task with a callback URL records its webhook delivery
// in the same transaction (machine_webhooks.go). It also owns the reads of
// single tasks by id, batched (reads), and the fresh rows a worker picks up
// without reading (fresh.go), which every status change invalidates.
type machine struct {
	db    *ent.Client
	bus   Publisher
	log   *slog.Logger
	now   func() time.Time
	fresh *fresh
	// reads batches single-task reads by id (group.go).
	reads *group[int, *ent.Task]
	// multi sends hot transactions in one packet (trip.go); nil: plain.
	multi *multiPool
	// hookMaxAge is how long a webhook delivery is tried (webhooks.max_age).
	hookMaxAge time.Duration
	// onWebhook learns of deliveries this process wrote (Service.OnWebhook).
	onWebhook atomic.Pointer[func()]
}

func newMachine(db *ent.Client, bus Publisher, log *slog.Logger, hookMaxAge time.Duration, bg *background) *machine {
	m := &machine{db: db, bus: bus, log: log, now: time.Now, fresh: newFresh(), hookMaxAge: hookMaxAge}
	m.reads = newGroup(bg, groupLanes, groupMax, m.loadTasks)
	return m
}

// task reads one task by id (batched with concurrent reads).
func (s *machine) task(ctx context.Context, id int) (*ent.Task, error) {
	return s.reads.do(ctx, id)
}

// Move describes one state transition of one task.
type Move struct {
	// To is the target status.
	To domain.TaskStatus
	// Fence makes the move apply only to exactly the row the caller read
	// (same status and attempt count); a worker uses it so that a task taken
	// over by another worker, or cancelled, is never overwritten. Without
	// Fence the move is retried against the fresh row while the transition
	// stays legal.
	Fence bool
	// Apply sets the columns that change with the status.
	Apply func(*ent.TaskUpdate)
	// Error is published with the event.
	Error string
	// Attempt is the attempt number published with the event (default: the
	// row's current count).
	Attempt int
	// Also runs further writes in the same database transaction as the
	// status change, only when the change wins (attempt rows, so a task and
	// its attempt never disagree, with one commit instead of two).
	Also func(ctx context.Context, c *ent.Client) error
}

// Transition moves a task from the status in cur to m.To with a conditional
// update (WHERE status = cur.Status AND attempts = cur.Attempts), so two
// actors can never both win; an illegal move is a CONFLICT error. It
// publishes the event and returns the row as it was before the move.
func (s *machine) Transition(ctx context.Context, cur *ent.Task, m Move) (*ent.Task, error) {
	id := cur.ID
	s.fresh.forget(id)
	for try := 0; ; try++ {
		if !domain.CanTransition(cur.Status, m.To) {
			return cur, Conflict("task %d is %s and cannot become %s", id, cur.Status, m.To)
		}
		n, err := s.casUpdate(ctx, cur, m)
		if err != nil {
			return cur, dbErr(err, "task", id)
		}
		if n == 1 {
			if needsWebhook(cur, m.To) {
				s.noteWebhook()
			}
			s.publish(ctx, cur, m.To, cmp.Or(m.Attempt, cur.Attempts), m.Error)
			return cur, nil
		}
		fresh, err := s.db.Task.Get(ctx, id)
		if err != nil {
			return cur, dbErr(err, "task", id)
		}
		if m.Fence || try >= 5 {
			return fresh, Conflict("task %d changed concurrently: it is now %s (attempt %d), expected %s (attempt %d)",
				id, fresh.Status, fresh.Attempts, cur.Status, cur.Attempts)
		}
		cur = fresh
	}
}

// casUpdate is Transition's conditional update, with m.Also in the same
// transaction when set, and the webhook delivery a terminal move of a task
// with a callback URL owes (machine_webhooks.go). It returns how many rows changed
// (0 or 1).
func (s *machine) casUpdate(ctx context.Context, cur *ent.Task, m Move) (int, error) {
	update := func(c *ent.Client) (int, error) {
		upd := c.Task.Update().Where(fenceOf(cur)).SetStatus(m.To)
		if m.Apply != nil {
			m.Apply(upd)
		}
		return upd.Save(ctx)
	}
	hook := needsWebhook(cur, m.To)
	if m.Also == nil && !hook {
		return update(s.db)
	}
	var n int
	err := s.withTx(ctx, func(tx *ent.Tx) error {
		var err error
		if n, err = update(tx.Client()); err != nil || n != 1 {
			return err
		}
		if m.Also != nil {
			if err := m.Also(ctx, tx.Client()); err != nil {
				return err
			}
		}
		if hook {
			return s.addDeliveries(ctx, tx.Client(), []int{cur.ID})
		}
		return nil
	})
	return n, err
}

// fenceOf matches a task's row only while it is as t shows it: same status
// and attempt count.
func fenceOf(t *ent.Task) predicate.Task {
	return task.And(task.ID(t.ID), task.StatusEQ(t.Status), task.Attempts(t.Attempts))
}

func (s *machine) withTx(ctx context.Context, fn func(tx *ent.Tx) error) error {
	tx, err := s.db.Tx(ctx)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		if rerr := tx.Rollback(); rerr != nil {
			return fmt.Errorf("%w (rollback: %v)", err, rerr)
		}
		return err
	}
	return tx.Commit()
}

func (s *machine) publish(ctx context.Context, t *ent.Task, to domain.TaskStatus, attempt int, errMsg string) {
	if s.bus == nil {
		return
	}
	e := events.TaskEvent{
		TaskID: t.ID, ModelID: t.ModelID, Priority: t.Priority, Type: t.Type,
		From: t.Status, To: to, Attempt: attempt, Error: errMsg, At: s.now().UTC(),
	}
	if t.Status == to && to == domain.StatusPending && attempt == 0 {
		e.From = ""
	}
	if err := s.bus.PublishTask(ctx, e); err != nil {
		// The database already holds the change; subscribers that missed
		// it read the current state when they (re)subscribe.
		s.log.Warn("publish task event", "task_id", t.ID, "to", to, "err", err)
	}
	s.log.InfoContext(ctx, "task state change", "task_id", t.ID, "model_id", t.ModelID, "from", e.From, "to", to, "attempt", attempt)
}

// publishCreated announces a new task.
func (s *machine) publishCreated(ctx context.Context, t *ent.Task) {
	s.publish(ctx, t, domain.StatusPending, 0, "")
}

// publishCreatedMany announces a batch of new tasks, in one round trip
// when the bus can.
func (s *machine) publishCreatedMany(ctx context.Context, ts []*ent.Task) {
	bp, ok := s.bus.(BatchPublisher)
	if !ok || s.bus == nil {
		for _, t := range ts {
			s.publishCreated(ctx, t)
		}
		return
	}
	at := s.now().UTC()
	es := make([]events.TaskEvent, len(ts))
	for i, t := range ts {
		es[i] = events.TaskEvent{TaskID: t.ID, ModelID: t.ModelID, Priority: t.Priority, Type: t.Type,
			To: domain.StatusPending, At: at}
	}
	if err := bp.PublishTasks(ctx, es); err != nil {
		// The database holds the tasks; subscribers read the current state
		// when they (re)subscribe.
		s.log.Warn("publish task events", "tasks", len(ts), "err", err)
	}
	s.log.InfoContext(ctx, "tasks created", "tasks", len(ts))
}

// loadTasks reads a batch of tasks with one query. Each caller gets a row
// of its own, so callers asking for the same task never share one.
func (s *machine) loadTasks(ctx context.Context, ids []int) []result[*ent.Task] {
	rows, err := s.db.Task.Query().Where(task.IDIn(ids...)).All(ctx)
	if err != nil {
		return failAll[*ent.Task](len(ids), dbErr(err, "task", ids[0]))
	}
	byID := make(map[int]*ent.Task, len(rows))
	for _, t := range rows {
		byID[t.ID] = t
	}
	res := make([]result[*ent.Task], len(ids))
	for i, id := range ids {
		t, ok := byID[id]
		if !ok {
			res[i].err = NotFound("task", id)
			continue
		}
		own := *t
		res[i].out = &own
	}
	return res
}
