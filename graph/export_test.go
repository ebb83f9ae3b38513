package graph

import (
	"context"

	"github.com/llmsched/llm-scheduler/internal/events"
)

// TaskOutput runs the taskOutput subscription of r as the websocket
// transport would.
func TaskOutput(ctx context.Context, r *Resolver, id int) (<-chan *events.OutputChunk, error) {
	return r.taskOutput(context.WithValue(ctx, websocketKey{}, true), id)
}
