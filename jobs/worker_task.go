package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/gostack"
	"github.com/llmsched/llm-scheduler/internal/providers"
	"github.com/llmsched/llm-scheduler/internal/scheduler"
)

// ProcessTask is the asynq handler.
func (w *Worker) ProcessTask(ctx context.Context, at *asynq.Task) error {
	// asynq runs each task on a new goroutine: grow its stack once, now,
	// rather than two or three times deep in the database and Redis calls
	// (internal/gostack).
	gostack.Grow()
	w.inflight.Add(1)
	defer w.inflight.Done()
	var p payload
	if err := json.Unmarshal(at.Payload(), &p); err != nil || p.TaskID == 0 {
		return fmt.Errorf("bad payload %q: %w", at.Payload(), asynq.SkipRetry)
	}
	t, err := w.svc.PickupTask(ctx, p.TaskID)
	if scheduler.CodeOf(err) == scheduler.CodeNotFound {
		return nil
	}
	if err != nil {
		return err
	}
	m, err := w.svc.ModelOf(ctx, t)
	if err != nil {
		return err
	}
	// Fallbacks (scheduler.Route): once its retries on its own model are
	// spent, the task runs on the model's fallbacks; m is where it runs now.
	rt, err := w.svc.Route(ctx, t, m)
	if err != nil {
		return err
	}
	if own := m; rt.Next(t).ID != own.ID {
		m = rt.Next(t)
		if err := w.release(own, t.ID, 0); err != nil { // a slot it may hold there
			return err
		}
	}
	if done, err := w.notRunnable(ctx, t, m, rt); done {
		return err
	}
	// Take a slot, or wait parked in the model's queue. A message picked
	// up soon after its grant already holds one.
	if !w.freshGrant(ctx, p, t, m) {
		if mine, err := w.takeSlot(ctx, t, m); !mine {
			return err // parked (nil): a released slot brings it back
		}
	}
	// Rate limits (worker_ratelimit.go): over the model's rpm/tpm the task
	// waits parked, without an attempt. The provider request is built once
	// here, for the rate limiter and the provider alike.
	req := requestOf(t)
	if ok, err := w.admitRate(ctx, t, m, req); !ok {
		return err
	}
	return w.run(ctx, t, m, rt, req)
}

// notRunnable handles a delivery that must not run now: the task ended
// while queued, its model was deleted, its retry backoff is not over, or
// another worker runs it. It reports whether it handled the delivery
// (err is then the handler's answer).
func (w *Worker) notRunnable(ctx context.Context, t *ent.Task, m *ent.Model, rt scheduler.Route) (bool, error) {
	if t.Status.Terminal() {
		// Cancelled or finished while queued: free whatever it holds.
		return true, w.release(m, t.ID, 0)
	}
	if m.DeletedAt != nil {
		if err := w.release(m, t.ID, 0); err != nil {
			return true, err
		}
		if err := w.svc.FailUnrunnable(ctx, t, fmt.Sprintf("model %d was deleted", m.ID)); err != nil && scheduler.CodeOf(err) != scheduler.CodeConflict {
			return true, err
		}
		return true, nil
	}
	if t.Status == domain.StatusPending && t.NextAttemptAt != nil && time.Until(*t.NextAttemptAt) > 50*time.Millisecond {
		// Re-admitted early (reconciler, after a Redis flush): give back any
		// slot it was granted and keep the backoff.
		if err := w.release(m, t.ID, 0); err != nil {
			return true, err
		}
		return true, &retryError{Delay: time.Until(*t.NextAttemptAt), Err: errors.New("retry backoff not over")}
	}
	if t.Status == domain.StatusRunning {
		// A second delivery of a running task (a re-admission after a
		// Redis flush, or a stale message of a lost worker). While its
		// lease lives, its worker is alive (or only just lost): come back
		// after a lease period instead of running it twice. Once the lease
		// has expired, takeSlot's Admit takes the task over.
		st, err := w.disp.slots.StateOf(ctx, rt.Current(t).ID, t.ID)
		if err != nil {
			return true, err
		}
		if st.Leased {
			return true, &retryError{Delay: w.cfg.Queue.LeaseTTL.D() + time.Second, Err: errors.New("task is running on another worker")}
		}
	}
	return false, nil
}

// takeSlot asks Redis for the task's slot: it reports whether the task
// holds one; if not, the task waits parked. Slots the call handed to other
// parked tasks are enqueued.
func (w *Worker) takeSlot(ctx context.Context, t *ent.Task, m *ent.Model) (bool, error) {
	held, granted, err := w.disp.slots.Admit(ctx, m.ID, capacity(m), []admitItem{itemOf(t)})
	if err != nil {
		return false, err
	}
	mine := len(held) == 1
	var others []Grant
	for _, g := range granted {
		if g.TaskID == t.ID {
			mine = true
		} else {
			others = append(others, g)
		}
	}
	if err := w.disp.enqueue(ctx, m.ID, others); err != nil {
		w.log.Warn("hand slots on", "model_id", m.ID, "err", err)
	}
	return mine, nil
}

// freshGrant reports whether a pending task's message still holds the
// slot lease it was sent with, so that the pickup needs no Admit (a Redis
// round trip per task) to confirm it. A lease given less than a third of
// its TTL ago cannot have expired: run's heartbeat renews it a third of
// the TTL after the attempt starts.
//
// The lease may have been given back since, though, by an earlier
// delivery of this same message, which asynq redelivers with the same
// payload. So the grant is trusted only if nothing since shows: the
// message never failed (a failed StartAttempt frees the slot), no attempt
// started after the grant (one interrupted at shutdown frees the slot and
// requeues the message), the task was due when granted (a re-admission
// during a retry backoff is given back), the model is not rate limited
// (admitRate gives the slot back and brings the message back, without
// any trace in the database) and the model is unchanged (its limits may
// just have been removed).
func (w *Worker) freshGrant(ctx context.Context, p payload, t *ent.Task, m *ent.Model) bool {
	if p.GrantedAt == 0 || t.Status != domain.StatusPending || m.ID != p.ModelID {
		return false
	}
	// GrantedAt is rounded down to the millisecond: a time in the same
	// millisecond may be after the grant.
	granted := time.UnixMilli(p.GrantedAt)
	window := w.disp.slots.ttl / 3
	if age := time.Since(granted); age >= window || age <= -window {
		return false // stale, or a clock too far off to tell
	}
	if n, _ := asynq.GetRetryCount(ctx); n > 0 {
		return false
	}
	if t.StartedAt != nil && !t.StartedAt.Before(granted) {
		return false
	}
	if t.NextAttemptAt != nil && t.NextAttemptAt.After(granted) {
		return false
	}
	if l, err := providers.LimitsOf(m.Config); err != nil || l.Limited() {
		return false
	}
	return m.UpdatedAt.Before(granted)
}

// release frees a task's slot and hands free slots to waiting tasks.
// repark > 0 parks the task again at that priority.
func (w *Worker) release(m *ent.Model, id, repark int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	granted, err := w.disp.slots.Release(ctx, m.ID, capacity(m), id, repark)
	if err != nil {
		return err
	}
	return w.disp.enqueue(ctx, m.ID, granted)
}
