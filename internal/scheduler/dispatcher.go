package scheduler

import (
	"context"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/internal/events"
)

// Dispatcher moves tasks through Redis (implemented by jobs.Dispatcher).
type Dispatcher interface {
	// Admit makes a pending task runnable: it gets a model slot and goes to
	// asynq, or waits parked in its model's queue.
	Admit(ctx context.Context, t *ent.Task, m *ent.Model) error
	// AdmitMany admits a batch of tasks of one model.
	AdmitMany(ctx context.Context, ts []*ent.Task, m *ent.Model) error
	// Remove drops a cancelled pending task from Redis and frees its slot.
	Remove(ctx context.Context, t *ent.Task, m *ent.Model) error
	// CancelRunning aborts a running attempt wherever it runs.
	CancelRunning(ctx context.Context, taskID int) error
	// Pump hands free slots of a model to its waiting tasks (after it went
	// online or got more workers).
	Pump(ctx context.Context, m *ent.Model) error
	// QueueState tells where a pending task waits.
	QueueState(ctx context.Context, t *ent.Task, m *ent.Model) (QueueState, error)
	// Ping checks Redis.
	Ping(ctx context.Context) error
}

// QueueState is where a pending task waits in Redis.
type QueueState struct {
	// Parked: waiting in its model's queue for a slot.
	Parked bool
	// Position is 1-based among the model's parked tasks.
	Position int
	// Leased: holds a model slot (queued in asynq or running).
	Leased bool
	// Running is the model's number of held slots; Max its limit.
	Running int
	Max     int
	// RateLimitedUntil is set while the model's dispatch backs off.
	RateLimitedUntil int64
	// Neither parked nor leased, the task may still be held by asynq (the
	// worker queue): Timer while a retry or schedule timer holds it (a
	// failed attempt's backoff, or a move to a fallback due at once that
	// asynq has not forwarded yet), Handling while a worker's handler has
	// it (the one that just failed an attempt, or one picking it up),
	// InWorkerQueue while it waits there for a worker.
	Timer, Handling, InWorkerQueue bool
}

// Publisher announces task events.
type Publisher interface {
	PublishTask(ctx context.Context, e events.TaskEvent) error
}

// BatchPublisher is a Publisher that can announce many events in one round
// trip (events.Bus can).
type BatchPublisher interface {
	PublishTasks(ctx context.Context, es []events.TaskEvent) error
}

// OutputReader reads what running attempts have streamed so far
// (events.Bus; see internal/events/output.go).
type OutputReader interface {
	OutputsSoFar(ctx context.Context, refs []events.OutputRef) (map[events.OutputRef]string, error)
}
