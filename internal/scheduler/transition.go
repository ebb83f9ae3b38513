package scheduler

import (
	"cmp"
	"context"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/ent/predicate"
	"github.com/llmsched/llm-scheduler/ent/task"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/events"
)

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
func (s *Service) Transition(ctx context.Context, cur *ent.Task, m Move) (*ent.Task, error) {
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
// with a callback URL owes (webhooks.go). It returns how many rows changed
// (0 or 1).
func (s *Service) casUpdate(ctx context.Context, cur *ent.Task, m Move) (int, error) {
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

func (s *Service) publish(ctx context.Context, t *ent.Task, to domain.TaskStatus, attempt int, errMsg string) {
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
func (s *Service) publishCreated(ctx context.Context, t *ent.Task) {
	s.publish(ctx, t, domain.StatusPending, 0, "")
}
