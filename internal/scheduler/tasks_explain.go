package scheduler

import (
	"context"
	"fmt"
	"time"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/internal/domain"
)

// PendingReason is a machine-readable reason why a task waits.
type PendingReason string

const (
	ReasonModelOffline   PendingReason = "model_offline"
	ReasonModelDeleted   PendingReason = "model_deleted"
	ReasonAtCapacity     PendingReason = "model_at_capacity"
	ReasonRetryBackoff   PendingReason = "retry_backoff"
	ReasonRateLimited    PendingReason = "rate_limited"
	ReasonWaitingWorker  PendingReason = "waiting_for_worker"
	ReasonDispatching    PendingReason = "dispatching"
	ReasonNotQueued      PendingReason = "not_queued"
	ReasonRedisUnhealthy PendingReason = "redis_unavailable"
	ReasonScheduled      PendingReason = "scheduled"
)

// Diagnosis says why a pending task waits and where.
type Diagnosis struct {
	Reason PendingReason `json:"reason"`
	// Detail is a sentence for people.
	Detail string `json:"detail"`
	// Position is 1-based among the model's waiting tasks (0 when it holds a slot).
	Position int `json:"position,omitempty"`
	// Running and MaxWorkers are the model's held and allowed slots.
	Running    int `json:"running"`
	MaxWorkers int `json:"max_workers"`
}

// Explain answers "why is this task still pending?". It returns nil for a
// task that is not pending.
func (s *Tasks) Explain(ctx context.Context, t *ent.Task) (*Diagnosis, error) {
	if t.Status != domain.StatusPending {
		return nil, nil
	}
	m, err := s.ModelOf(ctx, t)
	if err != nil {
		return nil, err
	}
	if m.DeletedAt != nil {
		return &Diagnosis{Reason: ReasonModelDeleted, Detail: fmt.Sprintf("model %q was deleted", m.Name), MaxWorkers: m.MaxWorkers}, nil
	}
	if t.Scheduled {
		return &Diagnosis{Reason: ReasonScheduled, MaxWorkers: m.MaxWorkers,
			Detail: fmt.Sprintf("scheduled to run at %s; it joins its model's queue then", t.RunAt.UTC().Format(time.RFC3339Nano))}, nil
	}
	// A task whose retries on its own model are spent waits on a fallback.
	if len(m.Fallbacks) > 0 {
		rt, err := routeOf(ctx, s.db, t, m)
		if err != nil {
			return nil, err
		}
		m = rt.Next(t)
	}
	d := &Diagnosis{MaxWorkers: m.MaxWorkers}
	qs, qerr := s.disp.QueueState(ctx, t, m)
	if qerr == nil {
		d.Running, d.Position = qs.Running, qs.Position
	}
	switch {
	case m.Status == domain.ModelOffline:
		d.Reason, d.Detail = ReasonModelOffline, fmt.Sprintf("model %q is offline; the task starts when it is online", m.Name)
	case t.NextAttemptAt != nil && t.NextAttemptAt.After(s.now()):
		d.Reason = ReasonRetryBackoff
		d.Detail = fmt.Sprintf("attempt %d failed; next attempt at %s", t.Attempts, t.NextAttemptAt.UTC().Format(time.RFC3339))
	case qerr != nil:
		d.Reason, d.Detail = ReasonRedisUnhealthy, "the queue cannot be read: "+qerr.Error()
	case qs.RateLimitedUntil > time.Now().UnixMilli():
		d.Reason = ReasonRateLimited
		d.Detail = fmt.Sprintf("model %q is rate limited until %s", m.Name, time.UnixMilli(qs.RateLimitedUntil).UTC().Format(time.RFC3339))
	case qs.Parked && qs.Running >= m.MaxWorkers:
		d.Reason = ReasonAtCapacity
		d.Detail = fmt.Sprintf("model %q runs %d of %d tasks at once; this task is number %d in its queue", m.Name, qs.Running, m.MaxWorkers, qs.Position)
	case qs.Parked:
		d.Reason, d.Detail = ReasonDispatching, "a slot is free and the task is being handed to a worker"
	case qs.Leased:
		d.Reason, d.Detail = ReasonWaitingWorker, "the task holds a model slot and waits for a free worker process"
	case (qs.Timer || qs.Handling) && t.NextAttemptAt != nil:
		// The backoff is over (or there was none: a move to a fallback),
		// and the retry timer or the handler of the failed attempt still
		// holds the task: it is still between its attempts.
		d.Reason = ReasonRetryBackoff
		d.Detail = fmt.Sprintf("attempt %d failed; the next attempt was due at %s and is being handed to a worker",
			t.Attempts, t.NextAttemptAt.UTC().Format(time.RFC3339))
	case qs.InWorkerQueue:
		d.Reason, d.Detail = ReasonWaitingWorker, "the task waits in the worker queue for a free worker process"
	case qs.Handling || qs.Timer:
		d.Reason, d.Detail = ReasonDispatching, "a worker is picking the task up, or the worker queue holds it for a moment after an error before its attempt started"
	default:
		d.Reason, d.Detail = ReasonNotQueued, "the task is not in Redis yet; the reconciler will enqueue it"
	}
	return d, nil
}
