package scheduler

import (
	"context"

	"github.com/llmsched/llm-scheduler/domain"
	"github.com/llmsched/llm-scheduler/ent"
)

// FallbackChain is the ordered list of models a task of model m may run
// on: m itself, then its fallbacks that are neither deleted nor offline
// (fallbacks of fallbacks are not followed). The workers route attempts
// along it (jobs/fallback.go) and Explain reads it to say where a task
// waits.
func (s *Service) FallbackChain(ctx context.Context, m *ent.Model) ([]*ent.Model, error) {
	chain := []*ent.Model{m}
	for _, id := range m.Fallbacks {
		fb, err := s.GetModel(ctx, id)
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

// RunsOn is the model of chain that a task's next attempt runs on: each
// model gets max_retries+1 attempts (counted since the last manual retry)
// before the task moves to the next one.
func RunsOn(chain []*ent.Model, t *ent.Task) *ent.Model {
	budget := t.MaxRetries + 1
	next := t.Attempts - t.AttemptBase + 1
	i := max(next-1, 0) / budget
	return chain[min(i, len(chain)-1)]
}

// RunningOn is the model of chain that a running task's current attempt
// runs on (where its slot lease is).
func RunningOn(chain []*ent.Model, t *ent.Task) *ent.Model {
	i := max(t.Attempts-t.AttemptBase-1, 0) / (t.MaxRetries + 1)
	return chain[min(i, len(chain)-1)]
}
