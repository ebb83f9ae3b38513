package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llmsched/llm-scheduler/ent"
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
	// rest waits between the pages of a sweep (loop.Sleep).
	rest func(ctx context.Context, d time.Duration) error
	// beforeHeld, when set (tests), runs before a round reads what Redis
	// holds of a page of tasks.
	beforeHeld func(ctx context.Context)
}

// NewReconciler builds a reconciler. leaseTTL is the model slot leases'
// (queue.lease_ttl), leaderTTL the reconciler's leader lease's
// (queue.leader_lease_ttl).
func NewReconciler(db *ent.Client, svc *scheduler.Lifecycle, disp *Dispatcher, prefix string, interval, leaseTTL, leaderTTL time.Duration, log *slog.Logger) *Reconciler {
	r := &Reconciler{db: db, svc: svc, disp: disp, rdb: disp.rdb, prefix: prefix, interval: interval, leaseTTL: leaseTTL, log: log, sweep: sweepChunk, rest: loop.Sleep}
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
