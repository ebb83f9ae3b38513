package jobs

import (
	"context"
	"time"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/scheduler"
)

// Fallbacks: a model may name fallback models (Model.fallbacks, in order).
// A task gets max_retries+1 attempts on its own model; when retryable
// errors (5xx, timeouts, rate limits, cut streams) use them all up, it
// moves on to the first fallback with the same budget there, then the
// next, and fails only after the last. A permanent error fails it at once
// wherever it runs. Each attempt records the model it ran on
// (Attempt.model_id), so the history shows the move; the task itself stays
// the model's task.
//
// The route is derived from the attempt count alone (attempts since the
// last manual retry, divided by the budget per model), so it needs no
// extra state and every worker agrees on it. Fallbacks that are deleted or
// offline when the route is computed are skipped. Only the task's own
// model's list counts: fallbacks of fallbacks are not followed.

// route is the ordered list of models a task may run on.
type route struct {
	// chain is the task's model, then its live fallbacks.
	chain []*ent.Model
	// budget is attempts per model: max_retries + 1.
	budget int
}

// routeOf computes a task's route from its model.
func (w *Worker) routeOf(ctx context.Context, t *ent.Task, m *ent.Model) (route, error) {
	chain, err := w.svc.FallbackChain(ctx, m)
	return route{chain: chain, budget: t.MaxRetries + 1}, err
}

// modelFor is the model of a task's n-th attempt since its last manual
// retry (n >= 1).
func (r route) modelFor(n int) *ent.Model {
	i := max(n-1, 0) / r.budget
	return r.chain[min(i, len(r.chain)-1)]
}

// next is the model the task's next attempt runs on.
func (r route) next(t *ent.Task) *ent.Model { return scheduler.RunsOn(r.chain, t) }

// more reports whether a task that has used n attempts (since its last
// manual retry) may try again after a retryable error, here or on a
// fallback.
func (r route) more(n int) bool { return n < r.budget*len(r.chain) }

// delay is the wait before attempt n+1: the retry policy's backoff within
// one model, none when the attempt moves on to a fallback (a different
// endpoint has no reason to wait for the first one to recover), except
// what the provider asked for.
func (r route) delay(p RetryPolicy, n int, retryAfter time.Duration) time.Duration {
	if n%r.budget == 0 && r.modelFor(n+1).ID != r.modelFor(n).ID {
		return 0
	}
	return p.Delay((n-1)%r.budget+1, retryAfter)
}
