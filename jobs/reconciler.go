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
	"github.com/llmsched/llm-scheduler/ent/task"
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
//     between the database insert and the enqueue, a lost enqueue).
type Reconciler struct {
	db       *ent.Client
	disp     *Dispatcher
	rdb      redis.UniversalClient
	prefix   string
	interval time.Duration
	leaseTTL time.Duration
	log      *slog.Logger

	flushSeen time.Time
}

// NewReconciler builds a reconciler.
func NewReconciler(db *ent.Client, disp *Dispatcher, prefix string, interval, leaseTTL time.Duration, log *slog.Logger) *Reconciler {
	return &Reconciler{db: db, disp: disp, rdb: disp.rdb, prefix: prefix, interval: interval, leaseTTL: leaseTTL, log: log}
}

func (r *Reconciler) epochKey() string { return r.prefix + ":epoch" }
func (r *Reconciler) lockKey() string  { return r.prefix + ":reconciler:lock" }

// Run reconciles every interval until ctx ends.
func (r *Reconciler) Run(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			ok, err := r.rdb.SetNX(ctx, r.lockKey(), "1", r.interval*9/10).Result()
			if err != nil {
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
		if time.Since(r.flushSeen) < r.leaseTTL/2 {
			return nil // let running workers restore their leases first
		}
		full = true
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
		if err := r.rdb.Set(ctx, r.epochKey(), time.Now().UnixMilli(), 0).Err(); err != nil {
			return fmt.Errorf("write epoch: %w", err)
		}
		r.flushSeen = time.Time{}
		r.log.Info("reconciler: re-admitted unfinished tasks after redis data loss")
	}
	return nil
}

// readmit admits unfinished tasks that Redis does not hold. With full, every
// unfinished task is admitted (admission is idempotent).
func (r *Reconciler) readmit(ctx context.Context, models map[int]*ent.Model, full bool) error {
	settled := time.Now().Add(-2 * r.interval)
	lastID := 0
	const page = 500
	for {
		q := r.db.Task.Query().
			Where(task.StatusIn(domain.StatusPending, domain.StatusRunning), task.IDGT(lastID)).
			Order(ent.Asc(task.FieldID)).Limit(page)
		if !full {
			q = q.Where(task.UpdatedAtLT(settled))
		}
		ts, err := q.All(ctx)
		if err != nil {
			return fmt.Errorf("list unfinished tasks: %w", err)
		}
		if len(ts) == 0 {
			return nil
		}
		lastID = ts[len(ts)-1].ID
		byModel := map[int][]*ent.Task{}
		for _, t := range ts {
			byModel[t.ModelID] = append(byModel[t.ModelID], t)
		}
		for modelID, group := range byModel {
			m := models[modelID]
			if m == nil {
				if m, err = r.db.Model.Query().Where(model.ID(modelID)).Only(ctx); err != nil {
					return fmt.Errorf("load model %d: %w", modelID, err)
				}
			}
			// After a flush asynq's state is gone, so only the slot state
			// counts: running tasks whose workers restored their leases by
			// heartbeat are left alone.
			missing, err := r.missing(ctx, modelID, group, !full)
			if err != nil {
				return err
			}
			if len(missing) == 0 {
				continue
			}
			r.log.Info("reconciler: re-admitting tasks redis did not hold", "model_id", modelID, "tasks", len(missing))
			if err := r.disp.AdmitMany(ctx, missing, m); err != nil {
				return err
			}
		}
		if len(ts) < page {
			return nil
		}
	}
}

// missing returns the tasks that are neither parked nor leased, nor (with
// checkAsynq) in asynq.
func (r *Reconciler) missing(ctx context.Context, modelID int, ts []*ent.Task, checkAsynq bool) ([]*ent.Task, error) {
	ids := make([]int, len(ts))
	for i, t := range ts {
		ids[i] = t.ID
	}
	present, err := r.disp.slots.Presence(ctx, modelID, ids)
	if err != nil {
		return nil, err
	}
	var out []*ent.Task
	for _, t := range ts {
		if present[t.ID] {
			continue
		}
		if !checkAsynq {
			out = append(out, t)
			continue
		}
		_, err := r.disp.inspector.GetTaskInfo(QueueFor(t.Priority), taskID(t.ID))
		switch {
		case err == nil:
			continue
		case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
			out = append(out, t)
		default:
			return nil, fmt.Errorf("look up task %d in asynq: %w", t.ID, err)
		}
	}
	return out, nil
}
