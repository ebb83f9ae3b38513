package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/ent/model"
	"github.com/llmsched/llm-scheduler/ent/predicate"
	"github.com/llmsched/llm-scheduler/ent/task"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/loop"
	"github.com/llmsched/llm-scheduler/internal/rediskeys"
	"github.com/llmsched/llm-scheduler/internal/scheduler"
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
	svc      *scheduler.Lifecycle
	disp     *Dispatcher
	rdb      redis.UniversalClient
	prefix   string
	interval time.Duration
	leaseTTL time.Duration
	log      *slog.Logger
	// lease makes this process the one that reconciles (run).
	lease *Lease
	// loop runs run between Start and Stop.
	loop loop.Loop

	flushSeen time.Time
	// lostSeen is when this process first saw each model whose marker is
	// gone while the epoch key is not (Redis Cluster: the model's shard
	// lost its data, see Slots.markModel).
	lostSeen map[int]time.Time
	// redisErrAt is when this process last failed to reach Redis (unix
	// ns): leases could not be renewed then, so takeovers wait for a
	// heartbeat.
	redisErrAt atomic.Int64
	// activeSeen is when this process first saw a pending task that holds
	// no slot while asynq has its message active: a worker that dequeued it
	// and died before starting it. asynq recovers such a message only a
	// minute or two later; after a lease period it is admitted again.
	activeSeen map[int]time.Time
	// sweep is how many pending tasks a round sweeps (sweepChunk).
	sweep int
}

// NewReconciler builds a reconciler. leaseTTL is the model slot leases'
// (queue.lease_ttl), leaderTTL the reconciler's leader lease's
// (queue.leader_lease_ttl).
func NewReconciler(db *ent.Client, svc *scheduler.Lifecycle, disp *Dispatcher, prefix string, interval, leaseTTL, leaderTTL time.Duration, log *slog.Logger) *Reconciler {
	r := &Reconciler{db: db, svc: svc, disp: disp, rdb: disp.rdb, prefix: prefix, interval: interval, leaseTTL: leaseTTL, log: log, sweep: sweepChunk}
	r.lease = NewLease(r.rdb, r.leaderKey(), leaderTTL)
	return r
}

func (r *Reconciler) epochKey() string { return rediskeys.Epoch(r.prefix) }

// leaderKey is the reconciler's leader lease.
func (r *Reconciler) leaderKey() string { return rediskeys.ReconcilerLock(r.prefix) }

// Lease is the reconciler's leader lease.
func (r *Reconciler) Lease() *Lease { return r.lease }

// releaseWait bounds how long run waits for Redis to release the lease.
const releaseWait = 2 * time.Second

// Start starts keeping the leader lease and reconciling (see run) in a
// goroutine of the reconciler's own, until Stop.
func (r *Reconciler) Start(ctx context.Context) error { return r.loop.Start(ctx, r.run) }

// Stop stops reconciling, releases the leader lease and waits for the
// goroutine to end, or for ctx to end.
func (r *Reconciler) Stop(ctx context.Context) error { return r.loop.Stop(ctx) }

// run keeps the leader lease (takes it when free, renews it every third
// of its ttl) and, while this process holds it, reconciles every interval,
// the first round at once. When ctx ends it stops reconciling and releases
// the lease, so that another process takes over at its next try instead of
// after the lease expired. A process that loses the lease (it could not
// renew it in time, or Redis lost it) stops reconciling, cancelling a
// round in progress, and competes for it again.
func (r *Reconciler) run(ctx context.Context) {
	// running is the rounds while this process leads: cancel them and
	// wait for done to stop.
	var running *struct {
		cancel context.CancelFunc
		done   chan struct{}
	}
	stop := func() {
		if running != nil {
			running.cancel()
			<-running.done
			running = nil
		}
	}
	defer func() {
		stop()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseWait)
		defer cancel()
		if released, err := r.lease.Release(rctx); err != nil {
			r.log.Warn("reconciler: release the leader lease; another process takes over once it expires", "err", err, "ttl", r.lease.TTL())
		} else if released {
			r.log.Info("reconciler: released the leader lease", "owner", r.lease.Token())
		}
	}()
	start := func() {
		r.log.Info("reconciler: took the leader lease", "owner", r.lease.Token(), "ttl", r.lease.TTL())
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		running = &struct {
			cancel context.CancelFunc
			done   chan struct{}
		}{cancel, done}
		go func() { defer close(done); r.rounds(rctx) }()
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		var err error
		if running != nil {
			var held bool
			if held, err = r.lease.Renew(ctx); err != nil {
				held = r.lease.Held() // ours until then, as far as we know
			}
			if !held {
				r.log.Warn("reconciler: lost the leader lease (not renewed in time); stopped reconciling", "owner", r.lease.Token(), "err", err)
				stop()
			}
		}
		if running == nil && err == nil {
			// Also tried at once after a loss: after a Redis flush nobody
			// holds it.
			var held bool
			if held, err = r.lease.Acquire(ctx); held {
				start()
			}
		}
		if err != nil {
			r.redisErrAt.Store(time.Now().UnixNano())
			if ctx.Err() == nil {
				r.log.Warn("reconciler: redis unavailable", "err", err)
			}
		}
		timer.Reset(r.nextKeep(running != nil, err))
	}
}

// nextKeep is when to renew or try the lease again: the leader every
// third of the ttl (sooner after a failed renewal, but not after the end
// of the lease as it counts it), the others every reconcile interval (a
// released lease is taken within one interval) or third of the ttl.
func (r *Reconciler) nextKeep(held bool, err error) time.Duration {
	third := r.lease.TTL() / 3
	if !held {
		return min(r.interval, third)
	}
	if err != nil {
		return max(min(third, time.Until(r.lease.until())), 10*time.Millisecond)
	}
	return third
}

// rounds reconciles every interval, the first round at once (dispatch
// waits for the epoch), until ctx ends.
func (r *Reconciler) rounds(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		if r.lease.Held() {
			if err := r.Once(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("reconciler round failed", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
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
			r.log.Warn("reconciler: redis lost its data; re-admitting unfinished tasks after one lease period")
		}
		running, err := r.db.Task.Query().Where(task.StatusEQ(domain.StatusRunning)).Exist(ctx)
		if err != nil {
			return fmt.Errorf("look for running tasks: %w", err)
		}
		if running && time.Since(r.flushSeen) < r.leaseTTL {
			// Let running workers restore their leases first. A live
			// worker renews every third of the lease TTL; a whole TTL
			// is what a lease promises, and leaves room for a heartbeat
			// late on a loaded host (half a TTL did not: under load a
			// slot went out beside a running task).
			return nil
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
	if r.disp.slots.modelMarks {
		remarked, err := r.marks(ctx, models, full)
		if err != nil {
			return err
		}
		full = full || remarked
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

// marks keeps the models' epoch markers (Redis Cluster, see
// Slots.markModel). After a flush (full: the reconciler waited for running
// workers' heartbeats) every model is marked. Otherwise a model never
// marked is marked now, and a model whose marker is gone lost its keys
// with it (its shard was flushed or failed over without them): it is
// marked again once running workers have had the same wait, and it
// reports true then, for a full re-admission.
func (r *Reconciler) marks(ctx context.Context, models []*ent.Model, full bool) (bool, error) {
	ids := make([]int, 0, len(models))
	for _, m := range models {
		if m.DeletedAt == nil {
			ids = append(ids, m.ID)
		}
	}
	slots := r.disp.slots
	if full {
		r.lostSeen = nil
		return false, slots.remark(ctx, ids)
	}
	fresh, lost, err := slots.unmarked(ctx, ids)
	if err != nil {
		return false, err
	}
	for _, id := range fresh {
		if _, err := slots.markModel(ctx, id); err != nil {
			return false, err
		}
	}
	if len(lost) == 0 {
		r.lostSeen = nil
		return false, nil
	}
	if r.lostSeen == nil {
		r.lostSeen = map[int]time.Time{}
	}
	var due []int
	for _, id := range lost {
		first, ok := r.lostSeen[id]
		if !ok {
			first = time.Now()
			r.lostSeen[id] = first
			r.log.Warn("reconciler: redis lost a model's keys; re-admitting its tasks after one lease period", "model_id", id)
		}
		if time.Since(first) >= r.leaseTTL { // as after a whole flush
			due = append(due, id)
		}
	}
	if len(due) < len(lost) {
		running, err := r.db.Task.Query().Where(task.StatusEQ(domain.StatusRunning)).Exist(ctx)
		if err != nil {
			return false, fmt.Errorf("look for running tasks: %w", err)
		}
		if !running {
			due = lost // no lease to wait for
		}
	}
	if len(due) == 0 {
		return false, nil
	}
	if err := slots.remark(ctx, due); err != nil {
		return false, err
	}
	for _, id := range due {
		delete(r.lostSeen, id)
	}
	return true, nil
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
			Order(ent.Asc(task.FieldUpdatedAt), ent.Asc(task.FieldID)).Limit(walkPage).All(ctx)
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
	rt := scheduler.NewRoute(chain, t)
	if t.Status == domain.StatusRunning {
		return rt.Current(t), nil
	}
	return rt.Next(t), nil
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
	takeovers := time.Since(time.Unix(0, r.redisErrAt.Load())) > r.leaseTTL
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
