package scheduler

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/ent/task"
	"github.com/llmsched/llm-scheduler/internal/domain"
)

// Scheduled tasks. A task created with run_at (or delay_seconds) in the
// future is stored pending with scheduled = true and enters no queue: Redis
// knows nothing of it, so neither a Redis flush nor a restart can lose or
// hurry it. When its run_at comes, AdmitDue (called by every process's due
// scanner, jobs/due.go) clears the flag with a fenced update, so exactly one
// process wins each task, and admits it to its model's queue, where
// priority and order apply from then on. A crash between the two leaves a
// pending task that Redis does not hold: the reconciler admits it.

// OnScheduled registers f to learn the run_at of every scheduled task this
// process creates, so the due scanner can wake exactly then instead of at
// its next look.
func (s *Tasks) OnScheduled(f func(runAt time.Time)) { s.onScheduled.Store(&f) }

func (s *Tasks) noteScheduled(at time.Time) {
	if f := s.onScheduled.Load(); f != nil {
		(*f)(at)
	}
}

// dueBatch bounds one round of AdmitDue.
const dueBatch = 500

// AdmitDue admits every scheduled task whose run_at has come and returns
// how many this call admitted and the run_at of the next scheduled task
// (zero when there is none).
func (s *Tasks) AdmitDue(ctx context.Context) (int, time.Time, error) {
	admitted := 0
	for {
		due, err := s.db.Task.Query().
			Where(task.Scheduled(true), task.StatusEQ(domain.StatusPending), task.RunAtLTE(s.now())).
			Order(ent.Asc(task.FieldRunAt), ent.Asc(task.FieldID)).Limit(dueBatch).All(ctx)
		if err != nil {
			return admitted, time.Time{}, dbErr(err, "task", 0)
		}
		won, err := s.claimDue(ctx, due)
		if err != nil {
			return admitted, time.Time{}, err
		}
		if err := s.admitClaimed(ctx, won); err != nil {
			return admitted, time.Time{}, err
		}
		admitted += len(won)
		if len(due) < dueBatch {
			break
		}
	}
	next, err := s.db.Task.Query().Where(task.Scheduled(true), task.StatusEQ(domain.StatusPending)).
		Order(ent.Asc(task.FieldRunAt)).First(ctx)
	switch {
	case ent.IsNotFound(err):
		return admitted, time.Time{}, nil
	case err != nil:
		return admitted, time.Time{}, dbErr(err, "task", 0)
	}
	return admitted, *next.RunAt, nil
}

// claimDue clears the scheduled flag of due tasks, each only if it is still
// set and the task still pending (another process may have claimed it, a
// user cancelled it), and returns the tasks this call won.
func (s *Tasks) claimDue(ctx context.Context, due []*ent.Task) ([]*ent.Task, error) {
	if len(due) == 0 {
		return nil, nil
	}
	ids := make([]int, len(due))
	for i, t := range due {
		ids[i] = t.ID
	}
	claim := func(c *ent.TaskClient, ids ...int) (int, error) {
		return c.Update().Where(task.IDIn(ids...), task.Scheduled(true), task.StatusEQ(domain.StatusPending)).
			SetScheduled(false).Save(ctx)
	}
	// All at once, unless another process (or a cancel) got to some of
	// them first: then row by row, to learn which ones this call won.
	err := s.m.withTx(ctx, func(tx *ent.Tx) error {
		n, err := claim(tx.Task, ids...)
		if err == nil && n != len(ids) {
			return errPartial
		}
		return err
	})
	switch {
	case err == nil:
		return due, nil
	case !errors.Is(err, errPartial):
		return nil, dbErr(err, "task", 0)
	}
	var won []*ent.Task
	for _, t := range due {
		n, err := claim(s.db.Task, t.ID)
		if err != nil {
			return won, dbErr(err, "task", t.ID)
		}
		if n == 1 {
			won = append(won, t)
		}
	}
	return won, nil
}

// admitClaimed admits claimed tasks, one slot call per model.
func (s *Tasks) admitClaimed(ctx context.Context, ts []*ent.Task) error {
	byModel := map[int][]*ent.Task{}
	for _, t := range ts {
		t.Scheduled = false
		byModel[t.ModelID] = append(byModel[t.ModelID], t)
	}
	for id, group := range byModel {
		m, err := s.models.get(ctx, s.db, id)
		if err != nil {
			return fmt.Errorf("admit due tasks of model %d: %w", id, dbErr(err, "model", id))
		}
		if err := s.disp.AdmitMany(ctx, group, m); err != nil {
			// Claimed and pending: the reconciler admits them once Redis answers.
			s.log.Warn("admit due scheduled tasks failed; the reconciler will retry", "model_id", id, "tasks", len(group), "err", err)
		}
	}
	return nil
}
