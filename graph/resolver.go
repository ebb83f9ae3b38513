package graph

import (
	"context"
	"log/slog"
	"time"

	"entgo.io/contrib/entgql"
	"github.com/99designs/gqlgen/graphql"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/events"
	"github.com/llmsched/llm-scheduler/internal/metrics"
	"github.com/llmsched/llm-scheduler/internal/scheduler"
)

// Resolver holds the dependencies of every resolver. Resolvers are thin:
// they check the caller's permission and call the domain service; the event
// bus feeds the subscriptions.
type Resolver struct {
	Svc *scheduler.Service
	// DB is read by the Relay connections alone (connections.go): entgql
	// paginates ent queries. Everything else goes through Svc.
	DB     *ent.Client
	Bus    Events
	Access Access
	// Log receives internal errors (slog.Default when nil).
	Log *slog.Logger
	// Metrics is the process's instrumentation: refused submissions are
	// counted there (nil: not counted).
	Metrics *metrics.Metrics
	// Buffer is each subscription's event buffer (events.DefaultBuffer when
	// zero). A subscriber that falls this far behind is ended with an
	// UNAVAILABLE error (see subscriptions.go).
	Buffer int
	// StatsInterval is the shortest gap between two dashboardStatsUpdated
	// pushes (250ms when zero); changes in between are coalesced.
	StatsInterval time.Duration
	// StatsRefresh pushes dashboardStatsUpdated even without task changes,
	// for the time-based figures (throughput, durations); 10s when zero.
	StatsRefresh time.Duration
}

// Events is the part of the event bus the subscriptions use (*events.Bus).
type Events interface {
	SubscribeTasks(f events.TaskFilter, buf int) *events.Subscription[events.TaskEvent]
	SubscribeOutput(taskID int, buf int) *events.Subscription[events.OutputChunk]
	// OutputSoFar returns what an attempt has streamed so far.
	OutputSoFar(ctx context.Context, taskID, attempt int) ([]events.OutputChunk, error)
}

// Access decides what the caller of an operation may do. The server package
// implements it with API keys and roles; graph cannot import server.
type Access interface {
	// Allow returns nil when the caller holds perm (domain's permissions
	// table), else an UNAUTHENTICATED
	// or FORBIDDEN scheduler.Error.
	Allow(ctx context.Context, perm domain.Permission) error
	// Owner is the API key whose tasks alone the caller may see (a
	// submitter); nil means every task.
	Owner(ctx context.Context) *int
	// Submitter is the API key recorded on tasks the caller creates; nil
	// when auth is off.
	Submitter(ctx context.Context) *int
}

// OpenAccess lets everyone do everything: the embedded development default
// when API keys are off, and tests of the resolvers alone.
type OpenAccess struct{}

func (OpenAccess) Allow(context.Context, domain.Permission) error { return nil }
func (OpenAccess) Owner(context.Context) *int                     { return nil }
func (OpenAccess) Submitter(context.Context) *int                 { return nil }

// NewSchema builds the executable schema. Connections and node lists cost
// their children's complexity once per item asked for, so the complexity
// limit bounds how many rows an operation can touch.
func NewSchema(r *Resolver) graphql.ExecutableSchema {
	c := Config{Resolvers: r}
	c.Complexity.Query.Tasks = func(child int, _ *entgql.Cursor[int], first *int, _ *entgql.Cursor[int], last *int, _ []*ent.TaskOrder, _ *ent.TaskWhereInput) int {
		return pageCost(child, first, last)
	}
	c.Complexity.Model.Tasks = c.Complexity.Query.Tasks
	c.Complexity.Query.Models = func(child int, _ *entgql.Cursor[int], first *int, _ *entgql.Cursor[int], last *int, _ []*ent.ModelOrder, _ *ent.ModelWhereInput) int {
		return pageCost(child, first, last)
	}
	c.Complexity.Query.Nodes = func(child int, ids []int) int { return 1 + child*max(len(ids), 1) }
	c.Complexity.Mutation.CreateTasks = func(child int, inputs []*CreateTaskInput) int { return 1 + child*max(len(inputs), 1) }
	return NewExecutableSchema(c)
}

// pageCost is a connection's complexity: its selection once per item of the
// page (defaultConnectionSize without first or last).
func pageCost(child int, first, last *int) int {
	n := defaultConnectionSize
	if first != nil {
		n = *first
	} else if last != nil {
		n = *last
	}
	return 1 + child*max(n, 1)
}

func (r *Resolver) buffer() int {
	if r.Buffer > 0 {
		return r.Buffer
	}
	return events.DefaultBuffer
}

// taskBuffer is the buffer of a subscription to one task's transitions:
// a task makes a handful per attempt, and a thousand such subscriptions
// at the default buffer held 30 MB of empty channel slots.
func (r *Resolver) taskBuffer() int { return min(r.buffer(), events.TaskBuffer) }

func (r *Resolver) allow(ctx context.Context, perm domain.Permission) error {
	return r.Access.Allow(ctx, perm)
}

func (r *Resolver) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.Default()
}
