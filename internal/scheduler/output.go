package scheduler

import (
	"context"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/events"
)

// OutputReader reads what running attempts have streamed so far
// (events.Bus; see internal/events/output.go).
type OutputReader interface {
	OutputsSoFar(ctx context.Context, refs []events.OutputRef) (map[events.OutputRef]string, error)
}

// OutputOf returns each task's output as a reader should see it, by task
// id: the stored output, or for a running task the text its attempt has
// streamed so far (a task's output is stored only when it completes).
//
// When Redis cannot be read, running tasks keep their stored (empty)
// output and the error is logged: a task read does not fail over a
// preview.
func (s *Service) OutputOf(ctx context.Context, ts ...*ent.Task) map[int]string {
	out := make(map[int]string, len(ts))
	var refs []events.OutputRef
	for _, t := range ts {
		out[t.ID] = t.Output
		if t.Status == domain.StatusRunning && t.Output == "" {
			refs = append(refs, events.OutputRef{TaskID: t.ID, Attempt: t.Attempts})
		}
	}
	r, ok := s.bus.(OutputReader)
	if !ok || len(refs) == 0 {
		return out
	}
	sofar, err := r.OutputsSoFar(ctx, refs)
	if err != nil {
		s.log.Warn("running tasks are shown without their output so far", "tasks", len(refs), "err", err)
		return out
	}
	for ref, text := range sofar {
		out[ref.TaskID] = text
	}
	return out
}
