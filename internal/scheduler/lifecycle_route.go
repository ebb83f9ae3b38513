package scheduler

import (
	"context"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/internal/domain"
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
//
// Route holds all of that arithmetic; the workers (jobs), the reconciler
// and Explain all read a task's model from it.

// Route is the ordered list of models a task may run on, and how many
// attempts it gets on each.
type Route struct {
	// Chain is the task's model, then its live fallbacks (FallbackChain).
	Chain []*ent.Model
	// Budget is attempts per model: max_retries + 1.
	Budget int
}

// NewRoute is the route of task t along chain (its model's FallbackChain).
func NewRoute(chain []*ent.Model, t *ent.Task) Route {
	return Route{Chain: chain, Budget: t.MaxRetries + 1}
}

// Route computes task t's route from its model m.
func (s *Lifecycle) Route(ctx context.Context, t *ent.Task, m *ent.Model) (Route, error) {
	return routeOf(ctx, s.db, t, m)
}

// routeOf is Route, for Tasks.Explain too.
func routeOf(ctx context.Context, db *ent.Client, t *ent.Task, m *ent.Model) (Route, error) {
	chain, err := fallbackChain(ctx, db, m)
	return NewRoute(chain, t), err
}

// AttemptsUsed is how many attempts task t has made since its last manual
// retry.
func AttemptsUsed(t *ent.Task) int { return t.Attempts - t.AttemptBase }

// ModelFor is the model of a task's n-th attempt since its last manual
// retry (n >= 1; 0 counts as 1), the last model of the chain once the
// budget of every model is spent.
func (r Route) ModelFor(n int) *ent.Model {
	i := max(n-1, 0) / r.Budget
	return r.Chain[min(i, len(r.Chain)-1)]
}

// Next is the model that task t's next attempt runs on.
func (r Route) Next(t *ent.Task) *ent.Model { return r.ModelFor(AttemptsUsed(t) + 1) }

// Current is the model that running task t's current attempt runs on
// (where its slot lease is).
func (r Route) Current(t *ent.Task) *ent.Model { return r.ModelFor(AttemptsUsed(t)) }

// More reports whether a task that has used n attempts (since its last
// manual retry) may try again after a retryable error, here or on a
// fallback.
func (r Route) More(n int) bool { return n < r.Budget*len(r.Chain) }

// MovesOn reports whether the attempt after the n-th runs on another model
// than the n-th (its model's budget is spent and a fallback follows).
func (r Route) MovesOn(n int) bool {
	return n%r.Budget == 0 && r.ModelFor(n+1).ID != r.ModelFor(n).ID
}

// OnModel is the number of the n-th attempt among those on its model (1 for
// the first attempt on each model of the chain): the retry policy's count.
func (r Route) OnModel(n int) int { return (n-1)%r.Budget + 1 }

// FallbackChain is the ordered list of models a task of model m may run
// on: m itself, then its fallbacks that are neither deleted nor offline
// (fallbacks of fallbacks are not followed). Route walks it.
func (s *Lifecycle) FallbackChain(ctx context.Context, m *ent.Model) ([]*ent.Model, error) {
	return fallbackChain(ctx, s.db, m)
}

func fallbackChain(ctx context.Context, db *ent.Client, m *ent.Model) ([]*ent.Model, error) {
	chain := []*ent.Model{m}
	for _, id := range m.Fallbacks {
		fb, err := liveModel(ctx, db, id)
		if CodeOf(err) == CodeNotFound {
			continue // deleted since it was named
		}
		if err != nil {
			return chain, err
		}
		if fb.ID == m.ID || fb.Status != domain.ModelOnline {
			continue
		}
		chain = append(chain, fb)
	}
	return chain, nil
}
