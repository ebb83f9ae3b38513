package scheduler

import (
	"context"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/internal/domain"
)

// CancelTask cancels a pending or running task. A pending task leaves its
// queue; a running one has its attempt aborted.
func (s *Tasks) CancelTask(ctx context.Context, id int) (*ent.Task, error) {
	cur, err := s.GetTask(ctx, id)
	if err != nil {
		return nil, err
	}
	if !cur.Status.Unfinished() {
		return nil, Conflict("task %d is %s; only pending or running tasks can be cancelled", id, cur.Status)
	}
	now := s.now()
	before, err := s.m.Transition(ctx, cur, Move{
		To: domain.StatusCancelled, Error: "cancelled by user",
		Apply: func(u *ent.TaskUpdate) {
			u.SetFinishedAt(now).SetError("cancelled by user").ClearNextAttemptAt().SetScheduled(false)
		},
	})
	if err != nil {
		return nil, err
	}
	m, err := s.db.Model.Get(ctx, before.ModelID)
	if err != nil {
		return nil, dbErr(err, "model", before.ModelID)
	}
	switch {
	case before.Scheduled:
		// It waited for its run_at in no queue: nothing to remove.
	case before.Status == domain.StatusRunning:
		// The worker frees the slot once its provider call has stopped, so
		// the model never runs more than max_workers calls at once. If the
		// worker is gone, the slot's lease expires.
		if err := s.disp.CancelRunning(ctx, id); err != nil {
			s.log.Warn("abort running attempt; it will be discarded when it ends", "task_id", id, "err", err)
		}
	default:
		if err := s.disp.Remove(ctx, before, m); err != nil {
			s.log.Warn("remove cancelled task from queue; the reconciler will finish it", "task_id", id, "err", err)
		}
	}
	return s.GetTask(ctx, id)
}

// RetryTask puts a failed or cancelled task back in its queue with a fresh
// retry budget. Its attempt history is kept.
func (s *Tasks) RetryTask(ctx context.Context, id int) (*ent.Task, error) {
	cur, err := s.GetTask(ctx, id)
	if err != nil {
		return nil, err
	}
	if cur.Status != domain.StatusFailed && cur.Status != domain.StatusCancelled {
		return nil, Conflict("task %d is %s; only failed or cancelled tasks can be retried", id, cur.Status)
	}
	m, err := s.loadLiveModel(ctx, cur.ModelID, "model_id")
	if err != nil {
		return nil, Conflict("task %d cannot be retried: %s", id, err.Error())
	}
	attempts := cur.Attempts
	if _, err := s.m.Transition(ctx, cur, Move{
		To: domain.StatusPending,
		Apply: func(u *ent.TaskUpdate) {
			u.SetAttemptBase(attempts).ClearError().ClearFinishedAt().ClearNextAttemptAt().ClearOutput().ClearEmbedding().
				SetScheduled(false)
		},
	}); err != nil {
		return nil, err
	}
	t, err := s.GetTask(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := s.disp.Admit(ctx, t, m); err != nil {
		s.log.Warn("admit retried task; the reconciler will retry", "task_id", id, "err", err)
	}
	return t, nil
}
