package scheduler

import (
	"context"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/events"
)

// BatchPublisher is a Publisher that can announce many events in one round
// trip (events.Bus can).
type BatchPublisher interface {
	PublishTasks(ctx context.Context, es []events.TaskEvent) error
}

// publishCreatedMany announces a batch of new tasks, in one round trip
// when the bus can.
func (s *Service) publishCreatedMany(ctx context.Context, ts []*ent.Task) {
	bp, ok := s.bus.(BatchPublisher)
	if !ok || s.bus == nil {
		for _, t := range ts {
			s.publishCreated(ctx, t)
		}
		return
	}
	at := s.now().UTC()
	es := make([]events.TaskEvent, len(ts))
	for i, t := range ts {
		es[i] = events.TaskEvent{TaskID: t.ID, ModelID: t.ModelID, Priority: t.Priority, Type: t.Type,
			To: domain.StatusPending, At: at}
	}
	if err := bp.PublishTasks(ctx, es); err != nil {
		// The database holds the tasks; subscribers read the current state
		// when they (re)subscribe.
		s.log.Warn("publish task events", "tasks", len(ts), "err", err)
	}
	s.log.InfoContext(ctx, "tasks created", "tasks", len(ts))
}
