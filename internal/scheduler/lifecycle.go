package scheduler

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/ent/attempt"
	"github.com/llmsched/llm-scheduler/internal/domain"
)

// Lifecycle is the attempt lifecycle, the workers' side of the state
// machine: pick a task up, start an attempt, and end it completed, failed
// (to retry or for good), interrupted or lost; plus the fallback route a
// task's attempts walk (lifecycle_route.go).
type Lifecycle struct {
	m   *machine
	db  *ent.Client
	log *slog.Logger
	now func() time.Time
	// starts and completes batch the hot paths' statements
	// (lifecycle_batch.go).
	starts    *group[startReq, started]
	completes *group[completeReq, struct{}]
}

func newLifecycle(m *machine, bg *background) *Lifecycle {
	s := &Lifecycle{m: m, db: m.db, log: m.log, now: m.now}
	s.starts = newGroup(bg, groupLanes, groupMax, s.startTasks)
	s.completes = newGroup(bg, groupLanes, groupMax, s.completeTasks)
	return s
}

// The methods in this file are the workers' side of the state machine. Each
// takes the task row as the worker last saw it and fences on it, so a
// worker that lost its task (cancelled, or taken over after its lease
// expired) can never overwrite what happened since.

// PickupTask returns a task for a worker that is about to run it: the row
// this process created it with if it has not been picked up yet (see
// fresh), else the database's. Everything but a worker's first look at a
// task uses GetTask.
func (s *Lifecycle) PickupTask(ctx context.Context, id int) (*ent.Task, error) {
	if t, ok := s.m.fresh.take(id); ok {
		return t, nil
	}
	return s.m.task(ctx, id)
}

// StartAttempt moves a task to running and records a new attempt. A task
// found running already belonged to a worker that was lost: its attempt is
// recorded as lost and this one takes over. It returns the task as it now
// is (status running, attempts counted).
func (s *Lifecycle) StartAttempt(ctx context.Context, t *ent.Task, modelID int, worker string) (*ent.Task, *ent.Attempt, error) {
	if t.Status == domain.StatusPending {
		st, err := s.starts.do(ctx, startReq{t: t, modelID: modelID, worker: worker})
		return st.running, st.att, err
	}
	return s.startAttempt(ctx, t, modelID, worker)
}

// startAttempt is StartAttempt for one task alone: a takeover, or a batch
// that startTasks could not apply whole.
func (s *Lifecycle) startAttempt(ctx context.Context, t *ent.Task, modelID int, worker string) (*ent.Task, *ent.Attempt, error) {
	now := s.now()
	n := t.Attempts + 1
	if t.Status == domain.StatusRunning && t.Attempts > 0 {
		if _, err := s.db.Attempt.Update().
			Where(attempt.TaskID(t.ID), attempt.Number(t.Attempts), attempt.StatusEQ(domain.AttemptRunning)).
			SetStatus(domain.AttemptLost).SetErrorKind("lost").
			SetError("the worker running this attempt stopped reporting (crash, kill or lost connection)").
			SetFinishedAt(now).Save(ctx); err != nil {
			return nil, nil, dbErr(err, "task", t.ID)
		}
	}
	var a *ent.Attempt
	if _, err := s.m.Transition(ctx, t, Move{
		To: domain.StatusRunning, Fence: true, Attempt: n,
		Apply: func(u *ent.TaskUpdate) {
			u.SetAttempts(n).SetStartedAt(now).ClearNextAttemptAt().ClearFinishedAt()
		},
		Also: func(ctx context.Context, c *ent.Client) error {
			var err error
			a, err = c.Attempt.Create().SetTaskID(t.ID).SetNumber(n).SetModelID(modelID).
				SetStatus(domain.AttemptRunning).SetWorker(worker).SetStartedAt(now).
				SetCaller(t.Caller).SetNillableAPIKeyID(t.APIKeyID).Save(ctx)
			return err
		},
	}); err != nil {
		return nil, nil, err
	}
	a = a.Unwrap() // detach from the committed transaction's client
	return runningCopy(t, now), a, nil
}

// runningCopy is t as a started attempt leaves it.
func runningCopy(t *ent.Task, now time.Time) *ent.Task {
	running := *t
	running.Status, running.Attempts = domain.StatusRunning, t.Attempts+1
	running.StartedAt, running.NextAttemptAt, running.FinishedAt = &now, nil, nil
	return &running
}

// Outcome is what an attempt produced.
type Outcome struct {
	Output           string
	Embedding        []float64
	PromptTokens     int
	CompletionTokens int
	// Cost is AttemptCost of the tokens on the attempt's model;
	// Estimated says the token counts were estimated, not reported.
	Cost      float64
	Estimated bool
	// TokenSource is "reported" or "estimated" (providers.Tokens*).
	TokenSource string
	// FinishReason is why the model stopped, as the provider said.
	FinishReason string
}

// CompleteAttempt stores the output and marks the task completed.
func (s *Lifecycle) CompleteAttempt(ctx context.Context, t *ent.Task, a *ent.Attempt, o Outcome) error {
	if o.Embedding == nil {
		_, err := s.completes.do(ctx, completeReq{t: t, a: a, o: o})
		return err
	}
	return s.completeAttempt(ctx, t, a, o)
}

// completeAttempt is CompleteAttempt for one task alone: an embedding, or
// a batch that completeTasks could not apply whole.
func (s *Lifecycle) completeAttempt(ctx context.Context, t *ent.Task, a *ent.Attempt, o Outcome) error {
	now := s.now()
	// The attempt is settled in the same transaction as the task, so
	// whoever sees the task finished also sees how its attempt ended.
	cur, err := s.m.Transition(ctx, t, Move{
		To: domain.StatusCompleted, Fence: true,
		Also: func(ctx context.Context, c *ent.Client) error {
			return c.Attempt.Update().Where(attempt.ID(a.ID)).SetStatus(domain.AttemptSucceeded).SetFinishedAt(now).
				SetPromptTokens(o.PromptTokens).SetCompletionTokens(o.CompletionTokens).
				SetCost(o.Cost).SetCostEstimated(o.Estimated).
				SetTokenSource(o.TokenSource).SetFinishReason(o.FinishReason).Exec(ctx)
		},
		Apply: func(u *ent.TaskUpdate) {
			u.SetOutput(o.Output).SetFinishedAt(now).ClearError().SetTokenSource(o.TokenSource).
				AddPromptTokens(o.PromptTokens).AddCompletionTokens(o.CompletionTokens).
				AddTotalTokens(o.PromptTokens + o.CompletionTokens).AddCost(o.Cost)
			if o.Estimated {
				u.SetCostEstimated(true)
			}
			if o.Embedding != nil {
				u.SetEmbedding(o.Embedding)
			}
		},
	})
	if err != nil && !ownCompletion(cur, t) {
		s.settleAttempt(ctx, a, domain.AttemptLost, "lost", "finished after the task changed: "+err.Error(), o.Output, now)
		return err
	}
	return nil
}

// ownCompletion reports whether a completion that came back as a conflict
// was in fact this attempt's own earlier write: a retried CompleteAttempt
// after the database committed but the answer was lost (connection dropped
// during an outage). Attempt numbers are fenced, so no other attempt can
// have completed the task with the same count.
func ownCompletion(fresh, t *ent.Task) bool {
	return fresh != nil && fresh.Status == domain.StatusCompleted && fresh.Attempts == t.Attempts
}

// RecoverLost hands back a running task whose worker stopped renewing its
// model slot lease (killed, crashed or cut off): the running attempt is
// recorded as lost, ending now, and the task returns to pending so it can
// be admitted again. The move is fenced on the attempt count, so a worker
// that took the task over meanwhile is never overwritten.
func (s *Lifecycle) RecoverLost(ctx context.Context, t *ent.Task, why string) (*ent.Task, error) {
	now := s.now()
	if _, err := s.m.Transition(ctx, t, Move{
		To: domain.StatusPending, Fence: true, Error: why,
		Apply: func(u *ent.TaskUpdate) { u.ClearNextAttemptAt() },
	}); err != nil {
		return nil, err
	}
	if _, err := s.db.Attempt.Update().
		Where(attempt.TaskID(t.ID), attempt.Number(t.Attempts), attempt.StatusEQ(domain.AttemptRunning)).
		SetStatus(domain.AttemptLost).SetErrorKind("lost").SetError(why).SetFinishedAt(now).
		Save(ctx); err != nil {
		return nil, dbErr(err, "task", t.ID)
	}
	back := *t
	back.Status, back.NextAttemptAt = domain.StatusPending, nil
	return &back, nil
}

// Failure describes a failed attempt.
type Failure struct {
	Kind    string
	Message string
	// Partial is output produced before the failure.
	Partial string
	// RetryAt is when the next attempt may run; zero means the task fails.
	RetryAt time.Time
	// Usage is what the attempt used before it failed (the tokens of
	// partial output), and its cost, as in Outcome.
	Usage Outcome
}

// charge adds a failed attempt's tokens and cost to its task's totals.
func (f Failure) charge(u *ent.TaskUpdate) {
	o := f.Usage
	if o.PromptTokens == 0 && o.CompletionTokens == 0 && o.Cost == 0 {
		return
	}
	u.AddPromptTokens(o.PromptTokens).AddCompletionTokens(o.CompletionTokens).
		AddTotalTokens(o.PromptTokens + o.CompletionTokens).AddCost(o.Cost)
	if o.Estimated {
		u.SetCostEstimated(true)
	}
}

// FailAttempt records a failed attempt. With a RetryAt the task goes back to
// pending until then; without, it fails.
func (s *Lifecycle) FailAttempt(ctx context.Context, t *ent.Task, a *ent.Attempt, f Failure) error {
	now := s.now()
	msg := fmt.Sprintf("attempt %d: %s", t.Attempts, f.Message)
	settle := func(ctx context.Context, c *ent.Client) error {
		return attemptOutcome(c, a, domain.AttemptFailed, f.Kind, f.Message, f.Partial, now).
			SetPromptTokens(f.Usage.PromptTokens).SetCompletionTokens(f.Usage.CompletionTokens).
			SetCost(f.Usage.Cost).SetCostEstimated(f.Usage.Estimated).Exec(ctx)
	}
	var err error
	if f.RetryAt.IsZero() {
		_, err = s.m.Transition(ctx, t, Move{
			To: domain.StatusFailed, Fence: true, Error: msg, Also: settle,
			Apply: func(u *ent.TaskUpdate) { u.SetError(msg).SetFinishedAt(now); f.charge(u) },
		})
	} else {
		_, err = s.m.Transition(ctx, t, Move{
			To: domain.StatusPending, Fence: true, Error: msg, Also: settle,
			Apply: func(u *ent.TaskUpdate) { u.SetError(msg).SetNextAttemptAt(f.RetryAt); f.charge(u) },
		})
	}
	if err != nil {
		s.settleAttempt(ctx, a, domain.AttemptLost, f.Kind, f.Message+" (reported after the task changed: "+err.Error()+")", f.Partial, now)
	}
	return err
}

// InterruptAttempt hands a task back to the queue because its worker is
// stopping (shutdown) or lost its model slot; the attempt is recorded as lost.
func (s *Lifecycle) InterruptAttempt(ctx context.Context, t *ent.Task, a *ent.Attempt, why string) error {
	now := s.now()
	_, err := s.m.Transition(ctx, t, Move{
		To: domain.StatusPending, Fence: true, Error: why,
		Apply: func(u *ent.TaskUpdate) { u.ClearNextAttemptAt() },
		Also: func(ctx context.Context, c *ent.Client) error {
			return attemptOutcome(c, a, domain.AttemptLost, "interrupted", why, "", now).Exec(ctx)
		},
	})
	if err != nil {
		s.settleAttempt(ctx, a, domain.AttemptLost, "interrupted", why, "", now)
	}
	return err
}

// CancelledAttempt records that a user cancelled the task while this
// attempt ran (the task itself was moved by CancelTask).
func (s *Lifecycle) CancelledAttempt(ctx context.Context, a *ent.Attempt, partial string) {
	s.settleAttempt(ctx, a, domain.AttemptCancelled, "cancelled", "cancelled by user", partial, s.now())
}

// attemptOutcome builds the update that records how an attempt ended.
func attemptOutcome(c *ent.Client, a *ent.Attempt, st domain.AttemptStatus, kind, msg, partial string, now time.Time) *ent.AttemptUpdate {
	// Update, not UpdateOneID: the latter reads the row back, a round trip
	// nobody uses.
	u := c.Attempt.Update().Where(attempt.ID(a.ID)).SetStatus(st).SetErrorKind(kind).SetError(msg).SetFinishedAt(now)
	if partial != "" {
		u.SetOutput(partial)
	}
	return u
}

func (s *Lifecycle) settleAttempt(ctx context.Context, a *ent.Attempt, st domain.AttemptStatus, kind, msg, partial string, now time.Time) {
	if err := attemptOutcome(s.db, a, st, kind, msg, partial, now).Exec(context.WithoutCancel(ctx)); err != nil {
		s.log.Error("record attempt outcome", "task_id", a.TaskID, "attempt", a.Number, "err", err)
	}
}

// FailUnrunnable fails a pending task that can never run (its model was
// deleted, or its request cannot be built), without an attempt.
func (s *Lifecycle) FailUnrunnable(ctx context.Context, t *ent.Task, why string) error {
	now := s.now()
	_, err := s.m.Transition(ctx, t, Move{
		To: domain.StatusFailed, Fence: true, Error: why,
		Apply: func(u *ent.TaskUpdate) { u.SetError(why).SetFinishedAt(now) },
	})
	return err
}
