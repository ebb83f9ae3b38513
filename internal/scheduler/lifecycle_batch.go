package scheduler

import (
	entsql "entgo.io/ent/dialect/sql"

	"context"
	"errors"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/ent/attempt"
	"github.com/llmsched/llm-scheduler/ent/predicate"
	"github.com/llmsched/llm-scheduler/ent/task"
	"github.com/llmsched/llm-scheduler/internal/domain"
)

// startReq is a pending task a worker is about to run.
type startReq struct {
	t       *ent.Task
	modelID int
	worker  string
}

type started struct {
	running *ent.Task
	att     *ent.Attempt
}

// startTasks moves a batch of pending tasks to running and records their
// attempts in one transaction: one fenced UPDATE (each row only if it is
// still what its worker read: status and attempt count), one INSERT of the
// attempts. If any row fails the fence, the batch runs item by item
// (startAttempt), which tells each worker whether it won.
func (s *Lifecycle) startTasks(ctx context.Context, reqs []startReq) []result[started] {
	now := s.now()
	var atts []*ent.Attempt
	err := s.m.hotTx(ctx, func(c *ent.Client, w *trip) error {
		fences := make([]predicate.Task, len(reqs))
		for i, r := range reqs {
			fences[i] = fenceOf(r.t)
		}
		w.rows(len(reqs))
		n, err := c.Task.Update().Where(task.Or(fences...)).
			SetStatus(domain.StatusRunning).AddAttempts(1).SetStartedAt(now).
			ClearNextAttemptAt().ClearFinishedAt().Save(ctx)
		if err != nil {
			return err
		}
		if n != len(reqs) {
			return errPartial
		}
		creates := make([]*ent.AttemptCreate, len(reqs))
		for i, r := range reqs {
			creates[i] = c.Attempt.Create().SetTaskID(r.t.ID).SetNumber(r.t.Attempts + 1).SetModelID(r.modelID).
				SetStatus(domain.AttemptRunning).SetWorker(r.worker).SetStartedAt(now).
				SetCaller(r.t.Caller).SetNillableAPIKeyID(r.t.APIKeyID)
		}
		w.rows(len(reqs))
		atts, err = c.Attempt.CreateBulk(creates...).Save(ctx)
		w.inserted(func(first int) {
			for i, a := range atts {
				a.ID = first + i
			}
		})
		return err
	})
	res := make([]result[started], len(reqs))
	switch {
	case errors.Is(err, errPartial):
		for i, r := range reqs {
			running, att, err := s.startAttempt(ctx, r.t, r.modelID, r.worker)
			res[i] = result[started]{out: started{running: running, att: att}, err: err}
		}
		return res
	case err != nil:
		return failAll[started](len(reqs), dbErr(err, "task", reqs[0].t.ID))
	}
	for i, r := range reqs {
		s.m.publish(ctx, r.t, domain.StatusRunning, r.t.Attempts+1, "")
		res[i].out = started{running: runningCopy(r.t, now), att: atts[i].Unwrap()}
	}
	return res
}

// completeReq is a finished attempt's output.
type completeReq struct {
	t *ent.Task // as the worker last wrote it (running)
	a *ent.Attempt
	o Outcome
}

// completeTasks stores a batch of outputs and marks the tasks completed,
// settling their attempts in the same transaction: one fenced UPDATE of the
// tasks and one of the attempts (CASE gives each row its own output and
// token counts). If any row fails the fence, the batch runs item by item
// (completeAttempt), which also recognises a retried write of its own.
func (s *Lifecycle) completeTasks(ctx context.Context, reqs []completeReq) []result[struct{}] {
	now := s.now()
	err := s.m.hotTx(ctx, func(c *ent.Client, w *trip) error {
		fences := make([]predicate.Task, len(reqs))
		taskIDs, attIDs := make([]int, len(reqs)), make([]int, len(reqs))
		outputs, prompt, completion, total := make([]any, len(reqs)), make([]any, len(reqs)), make([]any, len(reqs)), make([]any, len(reqs))
		cost := make([]any, len(reqs))
		var estTasks, estAtts, hooks []int
		sources, finishes := make([]any, len(reqs)), make([]any, len(reqs))
		for i, r := range reqs {
			fences[i] = fenceOf(r.t)
			if needsWebhook(r.t, domain.StatusCompleted) {
				hooks = append(hooks, r.t.ID)
			}
			taskIDs[i], attIDs[i] = r.t.ID, r.a.ID
			outputs[i], prompt[i], completion[i] = r.o.Output, r.o.PromptTokens, r.o.CompletionTokens
			total[i], cost[i] = r.o.PromptTokens+r.o.CompletionTokens, r.o.Cost
			if r.o.Estimated {
				estTasks, estAtts = append(estTasks, r.t.ID), append(estAtts, r.a.ID)
			}
			sources[i], finishes[i] = r.o.TokenSource, r.o.FinishReason
		}
		w.rows(len(reqs))
		n, err := c.Task.Update().Where(task.Or(fences...)).
			SetStatus(domain.StatusCompleted).SetFinishedAt(now).ClearError().
			Modify(func(u *entsql.UpdateBuilder) {
				u.Set(task.FieldOutput, byID(taskIDs, outputs, ""))
				u.Set(task.FieldPromptTokens, byID(taskIDs, prompt, task.FieldPromptTokens))
				u.Set(task.FieldCompletionTokens, byID(taskIDs, completion, task.FieldCompletionTokens))
				u.Set(task.FieldTotalTokens, byID(taskIDs, total, task.FieldTotalTokens))
				u.Set(task.FieldCost, byID(taskIDs, cost, task.FieldCost))
				u.Set(task.FieldTokenSource, byID(taskIDs, sources, ""))
			}).Save(ctx)
		if err != nil {
			return err
		}
		if n != len(reqs) {
			return errPartial
		}
		if err := c.Attempt.Update().Where(attempt.IDIn(attIDs...)).
			SetStatus(domain.AttemptSucceeded).SetFinishedAt(now).
			Modify(func(u *entsql.UpdateBuilder) {
				u.Set(attempt.FieldPromptTokens, byID(attIDs, prompt, ""))
				u.Set(attempt.FieldCompletionTokens, byID(attIDs, completion, ""))
				u.Set(attempt.FieldCost, byID(attIDs, cost, ""))
				u.Set(attempt.FieldTokenSource, byID(attIDs, sources, ""))
				u.Set(attempt.FieldFinishReason, byID(attIDs, finishes, ""))
			}).Exec(ctx); err != nil {
			return err
		}
		if err := s.m.addDeliveries(ctx, c, hooks); err != nil {
			return err
		}
		if len(estTasks) == 0 {
			return nil
		}
		if err := c.Task.Update().Where(task.IDIn(estTasks...)).SetCostEstimated(true).Exec(ctx); err != nil {
			return err
		}
		return c.Attempt.Update().Where(attempt.IDIn(estAtts...)).SetCostEstimated(true).Exec(ctx)
	})
	res := make([]result[struct{}], len(reqs))
	switch {
	case errors.Is(err, errPartial):
		for i, r := range reqs {
			res[i].err = s.completeAttempt(ctx, r.t, r.a, r.o)
		}
		return res
	case err != nil:
		return failAll[struct{}](len(reqs), dbErr(err, "task", reqs[0].t.ID))
	}
	for _, r := range reqs {
		if needsWebhook(r.t, domain.StatusCompleted) {
			s.m.noteWebhook()
		}
		s.m.publish(ctx, r.t, domain.StatusCompleted, r.t.Attempts, "")
	}
	return res
}

// byID is `CASE id WHEN id1 THEN v1 ... END`, each row's own value in one
// UPDATE of many rows; with add set, the value is added to that column.
func byID(ids []int, vals []any, add string) entsql.Querier {
	return entsql.ExprFunc(func(b *entsql.Builder) {
		if add != "" {
			b.WriteString("COALESCE(").Ident(add).WriteString(", 0) + ")
		}
		b.WriteString("CASE ").Ident("id")
		for i, id := range ids {
			b.WriteString(" WHEN ").Arg(id).WriteString(" THEN ").Arg(vals[i])
		}
		b.WriteString(" END")
	})
}
