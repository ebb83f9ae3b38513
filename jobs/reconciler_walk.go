package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/ent/model"
	"github.com/llmsched/llm-scheduler/ent/predicate"
	"github.com/llmsched/llm-scheduler/ent/task"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/rediskeys"
	"github.com/llmsched/llm-scheduler/internal/scheduler"
)

// Which tasks a round looks at (readmit: the running ones, a window of
// recent changes and a sweep through the backlog) and what it does with
// those that Redis lost (check, missing, takeOver).

// readmit admits unfinished tasks that Redis does not hold. With full, every
// unfinished task is looked at (admission is idempotent). Otherwise a round
// stays bounded however long the backlog (a million pending tasks took
// minutes to walk, every round): it looks at every running task (few: at
// most the models' max_workers), at pending tasks that changed since the
// previous round (a crash between insert and enqueue, a lost enqueue, a
// failover that lost the last writes), and at the next sweepChunk pending
// tasks of a sweep through the whole backlog, which finds anything else in
// backlog / sweepChunk rounds. Where the window and the sweep stand is kept
// in Redis, since any process may reconcile the next round.
func (r *Reconciler) readmit(ctx context.Context, models map[int]*ent.Model, full bool) error {
	for id, at := range r.activeSeen {
		if time.Since(at) > 10*r.leaseTTL {
			delete(r.activeSeen, id)
		}
	}
	settled := time.Now().Add(-2 * r.interval)
	chains := map[int][]*ent.Model{}
	if full {
		_, err := r.walk(ctx, models, chains, true, 0, task.StatusIn(domain.StatusPending, domain.StatusRunning))
		return err
	}
	if _, err := r.walk(ctx, models, chains, false, 0, task.StatusEQ(domain.StatusRunning), task.UpdatedAtLT(settled)); err != nil {
		return err
	}
	// Pending tasks that changed since the previous round's window (with
	// one interval of overlap), or in the last ten intervals at first.
	since := settled.Add(-10 * r.interval)
	if ms, err := r.rdb.Get(ctx, r.windowKey()).Int64(); err == nil {
		since = time.UnixMilli(ms).Add(-r.interval)
	} else if !errors.Is(err, redis.Nil) {
		return fmt.Errorf("read reconcile window: %w", err)
	}
	if err := r.walkWindow(ctx, models, chains, since, settled); err != nil {
		return err
	}
	if err := r.rdb.Set(ctx, r.windowKey(), settled.UnixMilli(), 0).Err(); err != nil {
		return fmt.Errorf("write reconcile window: %w", err)
	}
	// The sweep: the next sweepChunk pending tasks by id, from where the
	// previous round stopped; back to the start at the end.
	cursor, err := r.rdb.Get(ctx, r.sweepKey()).Int()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("read reconcile sweep: %w", err)
	}
	last, err := r.walk(ctx, models, chains, false, r.sweep, task.StatusEQ(domain.StatusPending),
		task.IDGT(cursor), task.UpdatedAtLT(settled))
	if err != nil {
		return err
	}
	if err := r.rdb.Set(ctx, r.sweepKey(), last, 0).Err(); err != nil {
		return fmt.Errorf("write reconcile sweep: %w", err)
	}
	return nil
}

// sweepChunk is how many pending tasks one reconcile round sweeps.
const sweepChunk = 5000

// walkFields are the columns a round reads of the tasks it looks at: what
// places a task on a model and tells whether Redis holds it. The few that
// Redis does not hold are read whole (whole) before they are re-admitted
// or taken over. Read whole, every page decoded each task's params (JSON)
// and carried its prompt: most of the cost of a round that sweeps 5,000
// pending tasks.
var walkFields = []string{task.FieldModelID, task.FieldStatus, task.FieldAttempts, task.FieldAttemptBase,
	task.FieldMaxRetries, task.FieldPriority, task.FieldUpdatedAt}

// whole reads ts again with every column, those still as a round saw them
// (same status and attempt): one that moved on meanwhile (it started,
// finished, or was retried) is left for the next round to look at.
func (r *Reconciler) whole(ctx context.Context, ts []*ent.Task) ([]*ent.Task, error) {
	if len(ts) == 0 {
		return ts, nil
	}
	seen := make(map[int]*ent.Task, len(ts))
	ids := make([]int, len(ts))
	for i, t := range ts {
		seen[t.ID], ids[i] = t, t.ID
	}
	all, err := r.db.Task.Query().Where(task.IDIn(ids...)).All(ctx)
	if err != nil {
		return nil, fmt.Errorf("read %d tasks redis did not hold: %w", len(ids), err)
	}
	out := all[:0]
	for _, t := range all {
		if was := seen[t.ID]; t.Status == was.Status && t.Attempts == was.Attempts {
			out = append(out, t)
		}
	}
	return out, nil
}

// walkPage is how many tasks the reconciler reads at a time.
var walkPage = 500

// walkWindow checks the pending tasks that changed in [since, until), a
// page at a time in the order of the (status, updated_at) index, the next
// page starting after the last (updated_at, id) seen: each page is a range
// read of that index, however large the backlog. Walked by id instead, a
// page made MySQL read the primary key from the first task on and filter:
// 0.6-1.4 s a page at a million pending tasks, and a round during a busy
// intake (tens of thousands of tasks changed per interval) took minutes
// and held the database the whole time.
func (r *Reconciler) walkWindow(ctx context.Context, models map[int]*ent.Model, chains map[int][]*ent.Model, since, until time.Time) error {
	window := []predicate.Task{task.StatusEQ(domain.StatusPending), task.Scheduled(false), task.UpdatedAtLT(until)}
	from := []predicate.Task{task.UpdatedAtGTE(since)}
	for {
		ts, err := r.db.Task.Query().Where(window...).Where(from...).
			Order(ent.Asc(task.FieldUpdatedAt), ent.Asc(task.FieldID)).Limit(walkPage).Select(walkFields...).All(ctx)
		if err != nil {
			return fmt.Errorf("list changed pending tasks: %w", err)
		}
		if len(ts) == 0 {
			return nil
		}
		if err := r.check(ctx, models, chains, false, ts); err != nil {
			return err
		}
		if len(ts) < walkPage {
			return nil
		}
		last := ts[len(ts)-1]
		from = []predicate.Task{task.UpdatedAtGTE(last.UpdatedAt), task.Not(task.And(task.UpdatedAt(last.UpdatedAt), task.IDLTE(last.ID)))}
	}
}

func (r *Reconciler) windowKey() string { return rediskeys.ReconcilerWindow(r.prefix) }
func (r *Reconciler) sweepKey() string  { return rediskeys.ReconcilerSweep(r.prefix) }

// walk checks the tasks that match where, by id, at most limit of them
// (0: all), and re-admits those Redis does not hold. It returns the last
// id looked at, or 0 once no task is left (so a sweep starts over).
func (r *Reconciler) walk(ctx context.Context, models map[int]*ent.Model, chains map[int][]*ent.Model, full bool, limit int, where ...predicate.Task) (int, error) {
	lastID, seen := 0, 0
	for {
		n := walkPage
		if limit > 0 {
			n = min(walkPage, limit-seen)
		}
		t0 := time.Now()
		// A scheduled task waits for its run_at in no queue (the due
		// scanner admits it), so Redis is right not to hold it.
		ts, err := r.db.Task.Query().Where(where...).Where(task.Scheduled(false), task.IDGT(lastID)).
			Order(ent.Asc(task.FieldID)).Limit(n).Select(walkFields...).All(ctx)
		if err != nil {
			return 0, fmt.Errorf("list unfinished tasks: %w", err)
		}
		if len(ts) == 0 {
			return 0, nil
		}
		lastID = ts[len(ts)-1].ID
		seen += len(ts)
		if err := r.check(ctx, models, chains, full, ts); err != nil {
			return 0, err
		}
		if len(ts) < n {
			return 0, nil
		}
		if limit > 0 && seen >= limit {
			return lastID, nil
		}
		if limit > 0 {
			// The sweep is a backstop that no task waits on: it rests
			// between pages as long as each took, so that a round's
			// sweep never holds the database and Redis for long in one
			// go (a 5,000-task sweep was 50-250 ms of work at a million
			// pending tasks, and a pickup that ran beside it was slowed).
			if err := r.rest(ctx, time.Since(t0)); err != nil {
				return 0, err
			}
		}
	}
}

// check re-admits the tasks of ts that Redis does not hold, and takes over
// running ones whose worker is lost.
func (r *Reconciler) check(ctx context.Context, models map[int]*ent.Model, chains map[int][]*ent.Model, full bool, ts []*ent.Task) error {
	// Group tasks by the model whose slot state holds them: their own, or
	// the fallback they moved to once their retries were spent.
	byModel, ids := map[int][]*ent.Task{}, map[int][]int{}
	for _, t := range ts {
		where, err := r.placeOf(ctx, t, models, chains)
		if err != nil {
			return err
		}
		byModel[where.ID] = append(byModel[where.ID], t)
		ids[where.ID] = append(ids[where.ID], t.ID)
	}
	if r.beforeHeld != nil {
		r.beforeHeld(ctx)
	}
	held, err := r.disp.slots.Held(ctx, ids)
	if err != nil {
		return err
	}
	for modelID, group := range byModel {
		m := models[modelID]
		// After a flush asynq's state is gone, so only the slot state
		// counts: running tasks whose workers restored their leases by
		// heartbeat are left alone.
		missing, lost, err := r.missing(ctx, m, group, held, full)
		if err != nil {
			return err
		}
		if missing, err = r.whole(ctx, missing); err != nil {
			return err
		}
		if lost, err = r.whole(ctx, lost); err != nil {
			return err
		}
		if len(lost) > 0 {
			back, err := r.takeOver(ctx, lost)
			if err != nil {
				return err
			}
			missing = append(missing, back...)
		}
		if len(missing) == 0 {
			continue
		}
		r.log.Info("reconciler: re-admitting tasks redis did not hold", "model_id", modelID, "tasks", len(missing))
		if err := r.disp.AdmitMany(ctx, missing, m); err != nil {
			return err
		}
	}
	return nil
}

// placeOf is the model whose slot state holds a task: the model its
// running attempt runs on, or the one its next attempt will run on.
func (r *Reconciler) placeOf(ctx context.Context, t *ent.Task, models map[int]*ent.Model, chains map[int][]*ent.Model) (*ent.Model, error) {
	m := models[t.ModelID]
	if m == nil {
		var err error
		if m, err = r.db.Model.Query().Where(model.ID(t.ModelID)).Only(ctx); err != nil {
			return nil, fmt.Errorf("load model %d: %w", t.ModelID, err)
		}
		models[m.ID] = m
	}
	if len(m.Fallbacks) == 0 {
		return m, nil
	}
	chain, ok := chains[m.ID]
	if !ok {
		var err error
		if chain, err = r.svc.FallbackChain(ctx, m); err != nil {
			return nil, err
		}
		chains[m.ID] = chain
		for _, c := range chain {
			models[c.ID] = c
		}
	}
	rt := scheduler.NewRoute(chain, t)
	if t.Status == domain.StatusRunning {
		return rt.Current(t), nil
	}
	return rt.Next(t), nil
}

// missing splits unfinished tasks of a model into pending ones Redis does
// not hold (neither parked nor leased, nor, unless full, in asynq: after a
// flush asynq's state is gone) and running ones whose worker is lost (no
// live lease for a whole lease period). A running task whose worker renews
// its lease (restored by heartbeat after a flush) is left alone.
func (r *Reconciler) missing(ctx context.Context, m *ent.Model, ts []*ent.Task, held Holding, full bool) (pending, lost []*ent.Task, err error) {
	// A running task gets its lease before it starts and renews it every
	// lease_ttl/3. Right after this process failed to reach Redis, other
	// workers' renewals may still be due: no takeovers then.
	takeovers := time.Since(time.Unix(0, r.redisErrAt.Load())) > r.leaseTTL
	cutoff := time.Now().Add(-r.leaseTTL)
	for _, t := range ts {
		if t.Status == domain.StatusRunning {
			if !held.Leased(t.ID) && takeovers && (full || t.UpdatedAt.Before(cutoff)) {
				lost = append(lost, t)
			}
			continue
		}
		if held.Present(t.ID) {
			continue
		}
		if full {
			pending = append(pending, t)
			continue
		}
		info, err := r.disp.inspector.GetTaskInfo(QueueFor(t.Priority), taskID(t.ID))
		switch {
		case err == nil && info.State == asynq.TaskStateActive:
			if r.activeSeen == nil {
				r.activeSeen = map[int]time.Time{}
			}
			first, ok := r.activeSeen[t.ID]
			if !ok {
				r.activeSeen[t.ID] = time.Now()
			} else if time.Since(first) > r.leaseTTL {
				delete(r.activeSeen, t.ID)
				pending = append(pending, t)
			}
		case err == nil:
			continue
		case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
			pending = append(pending, t)
		default:
			return nil, nil, fmt.Errorf("look up task %d in asynq: %w", t.ID, err)
		}
	}
	if len(lost) > 0 {
		// Redis losing its data during this round (a flush, or on Redis
		// Cluster the model's shard) looks like expired leases: nobody is
		// taken over unless the epoch key, and on Redis Cluster the
		// model's marker, which go with such a loss, are still there
		// after the leases were read. The next round handles the loss
		// instead. A full round is no exception: it follows one loss,
		// and another may come during it (a process's first round is a
		// full one, and a flush right after its first task started took
		// that task over, beside the worker still running it).
		if ok, err := r.intact(ctx, m); err != nil || !ok {
			return pending, nil, err
		}
	}
	return pending, lost, nil
}

// intact reports whether Redis still holds what the reconciler wrote
// after its last loss: the epoch key and, on Redis Cluster, the model's
// marker (Slots.markModel; kept for models not deleted), in one pipeline.
func (r *Reconciler) intact(ctx context.Context, m *ent.Model) (bool, error) {
	pipe := r.rdb.Pipeline()
	epoch := pipe.Exists(ctx, r.epochKey())
	var mark *redis.IntCmd
	if r.disp.slots.modelMarks && m.DeletedAt == nil {
		mark = pipe.Exists(ctx, r.disp.slots.markKeyOf(m.ID))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return false, fmt.Errorf("read the epoch key and the marker of model %d: %w", m.ID, err)
	}
	return epoch.Val() == 1 && (mark == nil || mark.Val() == 1), nil
}

// takeOver hands lost running tasks back to pending (recording the lost
// attempt) and returns those to admit again.
func (r *Reconciler) takeOver(ctx context.Context, lost []*ent.Task) ([]*ent.Task, error) {
	var back []*ent.Task
	for _, t := range lost {
		b, err := r.svc.RecoverLost(ctx, t, "the worker running this attempt stopped renewing its model slot lease (killed, crashed or cut off)")
		switch {
		case err == nil:
			r.log.Warn("reconciler: took over a task whose worker was lost", "task_id", t.ID, "attempt", t.Attempts)
			back = append(back, b)
		case scheduler.CodeOf(err) == scheduler.CodeConflict:
			// It moved on meanwhile (finished, or taken over elsewhere).
		default:
			return back, err
		}
	}
	return back, nil
}
