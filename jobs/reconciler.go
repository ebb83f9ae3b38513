package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llmsched/llm-scheduler/domain"
	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/ent/model"
	"github.com/llmsched/llm-scheduler/ent/predicate"
	"github.com/llmsched/llm-scheduler/ent/task"
	"github.com/llmsched/llm-scheduler/scheduler"
)

// Reconciler keeps Redis in step with the database, the system of record.
// Every interval (in one process of the cluster at a time) it:
//
//  1. detects a Redis that lost its data (the epoch key is gone) and, once
//     running workers have had a heartbeat to restore their leases,
//     re-admits every unfinished task;
//  2. pumps every model, so slots freed by expired leases (crashed
//     workers) or an ended rate-limit backoff reach waiting tasks;
//  3. re-admits unfinished tasks that Redis does not hold anywhere (a crash
//     between the database insert and the enqueue, a lost enqueue);
//  4. takes over running tasks whose model slot lease expired: their
//     worker was killed or cut off. The lost attempt is recorded and the
//     task is admitted again, without waiting for asynq's own recoverer
//     (which re-runs a task only a minute or two after its worker died).
type Reconciler struct {
	db       *ent.Client
	svc      *scheduler.Service
	disp     *Dispatcher
	rdb      redis.UniversalClient
	prefix   string
	interval time.Duration
	leaseTTL time.Duration
	log      *slog.Logger

	flushSeen time.Time
	// redisErrAt is when this process last failed to reach Redis: leases
	// could not be renewed then, so takeovers wait for a heartbeat.
	redisErrAt time.Time
	// activeSeen is when this process first saw a pending task that holds
	// no slot while asynq has its message active: a worker that dequeued it
	// and died before starting it. asynq recovers such a message only a
	// minute or two later; after a lease period it is admitted again.
	activeSeen map[int]time.Time
	// sweep is how many pending tasks a round sweeps (sweepChunk).
	sweep int
}

// NewReconciler builds a reconciler.
func NewReconciler(db *ent.Client, svc *scheduler.Service, disp *Dispatcher, prefix string, interval, leaseTTL time.Duration, log *slog.Logger) *Reconciler {
	return &Reconciler{db: db, svc: svc, disp: disp, rdb: disp.rdb, prefix: prefix, interval: interval, leaseTTL: leaseTTL, log: log, sweep: sweepChunk}
}

func (r *Reconciler) epochKey() string { return r.prefix + ":epoch" }
func (r *Reconciler) lockKey() string  { return r.prefix + ":reconciler:lock" }

// Run reconciles every interval until ctx ends.
func (r *Reconciler) Run(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	first := make(chan time.Time, 1)
	first <- time.Now() // a round at start: dispatch waits for the epoch
	for {
		select {
		case <-ctx.Done():
			return
		case <-first:
		case <-t.C:
		}
		ok, err := r.rdb.SetNX(ctx, r.lockKey(), "1", r.interval*9/10).Result()
		if err != nil {
			r.redisErrAt = time.Now()
			if ctx.Err() == nil {
				r.log.Warn("reconciler: redis unavailable", "err", err)
			}
			continue
		}
		if !ok {
			continue // another process reconciles this round
		}
		if err := r.Once(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("reconciler round failed", "err", err)
		}
	}
}

// Once runs one round.
func (r *Reconciler) Once(ctx context.Context) error {
	n, err := r.rdb.Exists(ctx, r.epochKey()).Result()
	if err != nil {
		return fmt.Errorf("read epoch: %w", err)
	}
	full := false
	if n == 0 {
		if r.flushSeen.IsZero() {
			r.flushSeen = time.Now()
			r.log.Warn("reconciler: redis lost its data; re-admitting unfinished tasks after one heartbeat")
		}
		running, err := r.db.Task.Query().Where(task.StatusEQ(domain.StatusRunning)).Exist(ctx)
		if err != nil {
			return fmt.Errorf("look for running tasks: %w", err)
		}
		if running && time.Since(r.flushSeen) < r.leaseTTL/2 {
			return nil // let running workers restore their leases first
		}
		full = true
		// Slots are handed out again from here on (see Slots.grantable).
		if err := r.rdb.Set(ctx, r.epochKey(), time.Now().UnixMilli(), 0).Err(); err != nil {
			return fmt.Errorf("write epoch: %w", err)
		}
	}
	models, err := r.db.Model.Query().All(ctx)
	if err != nil {
		return fmt.Errorf("list models: %w", err)
	}
	byID := make(map[int]*ent.Model, len(models))
	for _, m := range models {
		byID[m.ID] = m
		if m.DeletedAt == nil {
			if err := r.disp.Pump(ctx, m); err != nil {
				return err
			}
		}
	}
	if err := r.readmit(ctx, byID, full); err != nil {
		return err
	}
	if full {
		r.flushSeen = time.Time{}
		r.log.Info("reconciler: re-admitted unfinished tasks after redis data loss")
	}
	return nil
}

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
	if _, err := r.walk(ctx, models, chains, false, 0, task.StatusEQ(domain.StatusPending),
		task.UpdatedAtGTE(since), task.UpdatedAtLT(settled)); err != nil {
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

func (r *Reconciler) windowKey() string { return r.prefix + ":reconciler:window" }
func (r *Reconciler) sweepKey() string  { return r.prefix + ":reconciler:sweep" }

// walk checks the tasks that match where, by id, at most limit of them
// (0: all), and re-admits those Redis does not hold. It returns the last
// id looked at, or 0 once no task is left (so a sweep starts over).
func (r *Reconciler) walk(ctx context.Context, models map[int]*ent.Model, chains map[int][]*ent.Model, full bool, limit int, where ...predicate.Task) (int, error) {
	lastID, seen := 0, 0
	const page = 500
	for {
		n := page
		if limit > 0 {
			n = min(page, limit-seen)
		}
		// A scheduled task waits for its run_at in no queue (the due
		// scanner admits it), so Redis is right not to hold it.
		ts, err := r.db.Task.Query().Where(where...).Where(task.Scheduled(false), task.IDGT(lastID)).
			Order(ent.Asc(task.FieldID)).Limit(n).All(ctx)
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
	}
}

// check re-admits the tasks of ts that Redis does not hold, and takes over
// running ones whose worker is lost.
func (r *Reconciler) check(ctx context.Context, models map[int]*ent.Model, chains map[int][]*ent.Model, full bool, ts []*ent.Task) error {
	// Group tasks by the model whose slot state holds them: their own, or
	// the fallback they moved to once their retries were spent.
	byModel := map[int][]*ent.Task{}
	for _, t := range ts {
		where, err := r.placeOf(ctx, t, models, chains)
		if err != nil {
			return err
		}
		byModel[where.ID] = append(byModel[where.ID], t)
	}
	for modelID, group := range byModel {
		m := models[modelID]
		// After a flush asynq's state is gone, so only the slot state
		// counts: running tasks whose workers restored their leases by
		// heartbeat are left alone.
		missing, lost, err := r.missing(ctx, modelID, group, full)
		if err != nil {
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
	if t.Status == domain.StatusRunning {
		return scheduler.RunningOn(chain, t), nil
	}
	return scheduler.RunsOn(chain, t), nil
}

// missing splits unfinished tasks into pending ones Redis does not hold
// (neither parked nor leased, nor, unless full, in asynq: after a flush
// asynq's state is gone) and running ones whose worker is lost (no live
// lease for a whole lease period). A running task whose worker renews its
// lease (restored by heartbeat after a flush) is left alone.
func (r *Reconciler) missing(ctx context.Context, modelID int, ts []*ent.Task, full bool) (pending, lost []*ent.Task, err error) {
	ids := make([]int, len(ts))
	for i, t := range ts {
		ids[i] = t.ID
	}
	present, err := r.disp.slots.Presence(ctx, modelID, ids)
	if err != nil {
		return nil, nil, err
	}
	leased, err := r.disp.slots.Leased(ctx, modelID, ids)
	if err != nil {
		return nil, nil, err
	}
	// A running task gets its lease before it starts and renews it every
	// lease_ttl/3. Right after this process failed to reach Redis, other
	// workers' renewals may still be due: no takeovers then.
	takeovers := time.Since(r.redisErrAt) > r.leaseTTL
	cutoff := time.Now().Add(-r.leaseTTL)
	for _, t := range ts {
		if t.Status == domain.StatusRunning {
			if !leased[t.ID] && takeovers && (full || t.UpdatedAt.Before(cutoff)) {
				lost = append(lost, t)
			}
			continue
		}
		if present[t.ID] {
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
	if len(lost) > 0 && !full {
		// A Redis flush during this round looks like expired leases; the
		// next round handles it as a flush instead.
		if n, err := r.rdb.Exists(ctx, r.epochKey()).Result(); err != nil || n == 0 {
			return pending, nil, err
		}
	}
	return pending, lost, nil
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
