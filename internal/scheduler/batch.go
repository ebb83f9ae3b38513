package scheduler

import (
	"context"
	"errors"

	entsql "entgo.io/ent/dialect/sql"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/ent/attempt"
	"github.com/llmsched/llm-scheduler/ent/predicate"
	"github.com/llmsched/llm-scheduler/ent/task"
	"github.com/llmsched/llm-scheduler/internal/domain"
)

// The hot paths of a task's life (created, read at pickup, started,
// completed) go through groups (group.go): concurrent calls share one
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

type groups struct {
	reads     *group[int, *ent.Task]
	creates   *group[createReq, *ent.Task]
	starts    *group[startReq, started]
	completes *group[completeReq, struct{}]
}

func (s *Service) initGroups() {
	s.groups = groups{
		reads:     newGroup(s.bg, groupLanes, groupMax, s.loadTasks),
		creates:   newGroup(s.bg, groupLanes, groupMax, s.insertTasks),
		starts:    newGroup(s.bg, groupLanes, groupMax, s.startTasks),
		completes: newGroup(s.bg, groupLanes, groupMax, s.completeTasks),
	}
}

// failAll gives every item of a batch the same error.
func failAll[Out any](n int, err error) []result[Out] {
	res := make([]result[Out], n)
	for i := range res {
		res[i].err = err
	}
	return res
}

// loadTasks reads a batch of tasks with one query. Each caller gets a row
// of its own, so callers asking for the same task never share one.
func (s *Service) loadTasks(ctx context.Context, ids []int) []result[*ent.Task] {
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

// createReq is a validated task to insert, with its (live) model.
type createReq struct {
	v validated
	m *ent.Model
}

// insertTasks stores a batch of new tasks with one multi-row INSERT,
// announces them and admits them to their models' queues, one slot call
// per model (the enqueues of a model's grants go out side by side).
// Admission happens before the callers get their answers, so a task read
// right after its creation already shows where it waits.
func (s *Service) insertTasks(ctx context.Context, reqs []createReq) []result[*ent.Task] {
	builders := make([]*ent.TaskCreate, len(reqs))
	for i, r := range reqs {
		builders[i] = s.taskCreate(s.db.Task.Create(), r.v)
	}
	ts, err := s.db.Task.CreateBulk(builders...).Save(ctx)
	if err != nil {
		return failAll[*ent.Task](len(reqs), dbErr(err, "task", 0))
	}
	byModel := map[int][]*ent.Task{}
	models := map[int]*ent.Model{}
	res := make([]result[*ent.Task], len(reqs))
	now := make([]*ent.Task, 0, len(ts))
	for i, t := range ts {
		if f := reqs[i].v.OnStored; f != nil {
			f(t)
		}
		s.publishCreated(ctx, t)
		res[i].out = t
		if t.Scheduled {
			// Admitted by the due scanner when its run_at comes.
			s.noteScheduled(*t.RunAt)
			continue
		}
		now = append(now, t)
		byModel[reqs[i].m.ID] = append(byModel[reqs[i].m.ID], t)
		models[reqs[i].m.ID] = reqs[i].m
	}
	s.fresh.put(now) // before admission: a granted task may be picked up at once
	for id, group := range byModel {
		if err := s.disp.AdmitMany(ctx, group, models[id]); err != nil {
			// The tasks are stored; the reconciler enqueues them once Redis answers.
			s.log.Warn("admit tasks failed; the reconciler will retry", "model_id", id, "tasks", len(group), "err", err)
		}
	}
	return res
}

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

// errPartial rolls back a batch whose fenced update did not match every
// row: some task changed since its worker read it. The batch then runs
// item by item, where each item learns exactly what happened to it.
var errPartial = errors.New("batch matched only part of its rows")

// startTasks moves a batch of pending tasks to running and records their
// attempts in one transaction: one fenced UPDATE (each row only if it is
// still what its worker read: status and attempt count), one INSERT of the
// attempts. If any row fails the fence, the batch runs item by item
// (startAttempt), which tells each worker whether it won.
func (s *Service) startTasks(ctx context.Context, reqs []startReq) []result[started] {
	now := s.now()
	var atts []*ent.Attempt
	err := s.withTx(ctx, func(tx *ent.Tx) error {
		fences := make([]predicate.Task, len(reqs))
		for i, r := range reqs {
			fences[i] = fenceOf(r.t)
		}
		n, err := tx.Task.Update().Where(task.Or(fences...)).
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
			creates[i] = tx.Attempt.Create().SetTaskID(r.t.ID).SetNumber(r.t.Attempts + 1).SetModelID(r.modelID).
				SetStatus(domain.AttemptRunning).SetWorker(r.worker).SetStartedAt(now).
				SetCaller(r.t.Caller).SetNillableAPIKeyID(r.t.APIKeyID)
		}
		atts, err = tx.Attempt.CreateBulk(creates...).Save(ctx)
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
		s.publish(ctx, r.t, domain.StatusRunning, r.t.Attempts+1, "")
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
func (s *Service) completeTasks(ctx context.Context, reqs []completeReq) []result[struct{}] {
	now := s.now()
	err := s.withTx(ctx, func(tx *ent.Tx) error {
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
		n, err := tx.Task.Update().Where(task.Or(fences...)).
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
		if err := tx.Attempt.Update().Where(attempt.IDIn(attIDs...)).
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
		if err := s.addDeliveries(ctx, tx.Client(), hooks); err != nil {
			return err
		}
		if len(estTasks) == 0 {
			return nil
		}
		if err := tx.Task.Update().Where(task.IDIn(estTasks...)).SetCostEstimated(true).Exec(ctx); err != nil {
			return err
		}
		return tx.Attempt.Update().Where(attempt.IDIn(estAtts...)).SetCostEstimated(true).Exec(ctx)
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
			s.noteWebhook()
		}
		s.publish(ctx, r.t, domain.StatusCompleted, r.t.Attempts, "")
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
