package graph

import (
	"context"
	"errors"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/events"
	"github.com/llmsched/llm-scheduler/internal/scheduler"
)

// Subscriptions read the event bus through bounded buffers (Resolver.Buffer)
// and never block it: a subscriber whose buffer fills is closed by the bus
// with events.ErrOverflow, and the subscription ends with an UNAVAILABLE
// error ("resubscribe"); on resubscribing the client first gets the current
// state again. dashboardStatsUpdated is the exception: it carries snapshots,
// so after an overflow it resubscribes by itself and pushes fresh stats.
//
// Every subscription subscribes to the bus before it reads the current state,
// so no change falls between the two. Each runs one goroutine that ends when
// the client stops the operation or disconnects (the context ends), and that
// always closes its bus subscriptions.

type websocketKey struct{}

// withWebsocket marks a context as belonging to a websocket connection, the
// only transport that streams subscriptions here.
func withWebsocket(ctx context.Context) context.Context {
	return context.WithValue(ctx, websocketKey{}, true)
}

func onWebsocket(ctx context.Context) bool {
	v, _ := ctx.Value(websocketKey{}).(bool)
	return v
}

// startSubscription checks what every subscription needs: the read
// permission and a websocket to stream on.
func (r *Resolver) startSubscription(ctx context.Context) error {
	if err := r.allow(ctx, domain.PermRead); err != nil {
		return err
	}
	if !onWebsocket(ctx) {
		return scheduler.Invalid("", "subscriptions are served over a websocket on /graphql (graphql-transport-ws or graphql-ws)")
	}
	return nil
}

// fail ends a subscription with an error message to the client (the
// websocket transport sends it as an error frame after the channel closes).
func (r *Resolver) fail(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return // the client left; nobody to tell
	}
	transport.AddSubscriptionError(ctx, ErrorPresenter(r.log())(ctx, err))
}

// overflowErr says why the bus closed a subscription.
func overflowErr(err error) error {
	if err == nil {
		err = errors.New("event stream closed")
	}
	return &scheduler.Error{Code: scheduler.CodeUnavailable, Message: err.Error(), Err: err}
}

func send[T any](ctx context.Context, ch chan<- T, v T) bool {
	select {
	case ch <- v:
		return true
	case <-ctx.Done():
		return false
	}
}

// taskUpdated streams one task: its current state, then its state after
// every transition, until a terminal one.
func (r *Resolver) taskUpdated(ctx context.Context, id int) (<-chan *ent.Task, error) {
	if err := r.startSubscription(ctx); err != nil {
		return nil, err
	}
	owner := r.Access.Owner(ctx)
	sub := r.Bus.SubscribeTasks(events.TaskFilter{TaskID: id}, r.taskBuffer())
	snap, err := r.Svc.TaskFor(ctx, id, owner)
	if err != nil {
		sub.Close()
		return nil, err
	}
	out := make(chan *ent.Task, 1)
	go func() {
		defer close(out)
		defer sub.Close()
		if !send(ctx, out, snap) || snap.Status.Terminal() {
			return
		}
		lastStatus, lastAttempt := snap.Status, snap.Attempts
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-sub.C:
				if !ok {
					r.fail(ctx, overflowErr(sub.Err()))
					return
				}
				// Events published before the snapshot was read can arrive
				// after it: drop those older than the snapshot and the one
				// that produced the state just sent.
				if e.At.Before(snap.UpdatedAt) || (e.To == lastStatus && e.Attempt == lastAttempt) {
					continue
				}
				cur, err := r.Svc.GetTask(ctx, id)
				if err != nil {
					r.fail(ctx, err)
					return
				}
				if cur.Status != e.To {
					// The task has moved on already; still report this
					// transition, so clients see every state in order.
					view := *cur
					view.Status, view.Attempts = e.To, e.Attempt
					cur = &view
				}
				if !send(ctx, out, cur) || e.To.Terminal() {
					return
				}
				lastStatus, lastAttempt = e.To, e.Attempt
			}
		}
	}()
	return out, nil
}

// taskEvents streams every transition that passes the filter.
func (r *Resolver) taskEvents(ctx context.Context, filter *TaskEventFilter) (<-chan *events.TaskEvent, error) {
	if err := r.startSubscription(ctx); err != nil {
		return nil, err
	}
	var f events.TaskFilter
	if filter != nil {
		for i, p := range filter.Priorities {
			if !domain.Priority(p).Valid() {
				return nil, scheduler.Invalid("filter.priorities["+itoa(i)+"]", "must be 1, 2 or 3, got %d", p)
			}
		}
		f = events.TaskFilter{ModelIDs: filter.ModelIDs, Statuses: filter.Statuses, Priorities: filter.Priorities}
	}
	owner := r.Access.Owner(ctx)
	sub := r.Bus.SubscribeTasks(f, r.buffer())
	out := make(chan *events.TaskEvent, 1)
	go func() {
		defer close(out)
		defer sub.Close()
		// A submitter sees only their own tasks' events; ownership never
		// changes, so remember it per task (bounded).
		owned := map[int]bool{}
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-sub.C:
				if !ok {
					r.fail(ctx, overflowErr(sub.Err()))
					return
				}
				if owner != nil {
					mine, known := owned[e.TaskID]
					if !known {
						var err error
						if mine, err = r.Svc.TaskOwnedBy(ctx, e.TaskID, owner); err != nil {
							r.fail(ctx, err)
							return
						}
						if len(owned) >= 10_000 {
							clear(owned)
						}
						owned[e.TaskID] = mine
					}
					if !mine {
						continue
					}
				}
				if !send(ctx, out, &e) {
					return
				}
			}
		}
	}()
	return out, nil
}

// taskOutput streams a task's output chunks until the task is terminal.
//
// A subscriber that joins mid-answer first gets what the current attempt
// has streamed so far, then the live chunks: the subscription to the bus
// is taken before the chunks kept so far are read, and every chunk is
// kept before it is published (internal/events/output.go), so nothing falls in
// between; chunks both read and received (by attempt and seq) go out once.
func (r *Resolver) taskOutput(ctx context.Context, id int) (<-chan *events.OutputChunk, error) {
	if err := r.startSubscription(ctx); err != nil {
		return nil, err
	}
	owner := r.Access.Owner(ctx)
	s := &outputStream{r: r, id: id, out: make(chan *events.OutputChunk, 1)}
	s.chunks = r.Bus.SubscribeOutput(id, r.buffer())
	s.moves = r.Bus.SubscribeTasks(events.TaskFilter{TaskID: id}, r.taskBuffer())
	t, err := r.Svc.TaskFor(ctx, id, owner)
	if err != nil {
		s.closeSubscriptions()
		return nil, err
	}
	var sofar []events.OutputChunk
	if !t.Status.Terminal() && t.Attempts > 0 {
		if sofar, err = r.Bus.OutputSoFar(ctx, id, t.Attempts); err != nil {
			s.closeSubscriptions()
			return nil, scheduler.Unavailable("redis", err)
		}
	}
	go s.run(ctx, t, sofar)
	return s.out, nil
}

// outputStream sends one task's output to one subscriber.
type outputStream struct {
	r      *Resolver
	id     int
	out    chan *events.OutputChunk
	chunks *events.Subscription[events.OutputChunk]
	moves  *events.Subscription[events.TaskEvent]
	// attempt and seq are the last chunk sent from what was kept: the bus
	// chunks up to it have been sent already.
	attempt, seq int
}

func (s *outputStream) closeSubscriptions() {
	s.chunks.Close()
	s.moves.Close()
}

func (s *outputStream) fresh(c events.OutputChunk) bool {
	return c.Attempt > s.attempt || c.Attempt == s.attempt && c.Seq > s.seq
}

// run sends the stored output of an ended task as one chunk; otherwise the
// chunks kept so far, then those the bus delivers until the task ends.
func (s *outputStream) run(ctx context.Context, t *ent.Task, sofar []events.OutputChunk) {
	defer close(s.out)
	defer s.closeSubscriptions()
	if t.Status.Terminal() {
		send(ctx, s.out, &events.OutputChunk{TaskID: s.id, Attempt: t.Attempts, Seq: 1, Text: t.Output, Done: true})
		return
	}
	for i := range sofar {
		if !send(ctx, s.out, &sofar[i]) {
			return
		}
		s.attempt, s.seq = sofar[i].Attempt, sofar[i].Seq
	}
	s.follow(ctx)
}

// follow sends the bus's chunks until the task ends, the subscriber goes
// away or a subscription overflows.
func (s *outputStream) follow(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case c, ok := <-s.chunks.C:
			if !ok {
				s.r.fail(ctx, overflowErr(s.chunks.Err()))
				return
			}
			if !s.fresh(c) {
				continue // already sent from what was kept
			}
			if !send(ctx, s.out, &c) {
				return
			}
		case e, ok := <-s.moves.C:
			if !ok {
				s.r.fail(ctx, overflowErr(s.moves.Err()))
				return
			}
			if e.To.Terminal() {
				s.drain(ctx)
				return
			}
		}
	}
}

// drain sends the chunks still buffered once the task ended. The bus
// delivers in publish order and the worker publishes the last chunk before
// the transition, so every chunk of the final attempt is already buffered.
func (s *outputStream) drain(ctx context.Context) {
	for {
		select {
		case c, ok := <-s.chunks.C:
			if !ok {
				return
			}
			if !s.fresh(c) {
				continue
			}
			if !send(ctx, s.out, &c) {
				return
			}
		default:
			return
		}
	}
}

// dashboardStatsUpdated pushes the stats now, then after task changes at
// most once per StatsInterval, and every StatsRefresh regardless.
func (r *Resolver) dashboardStatsUpdated(ctx context.Context) (<-chan *scheduler.DashboardStats, error) {
	if err := r.startSubscription(ctx); err != nil {
		return nil, err
	}
	interval, refresh := r.StatsInterval, r.StatsRefresh
	if interval <= 0 {
		interval = 250 * time.Millisecond
	}
	if refresh <= 0 {
		refresh = 10 * time.Second
	}
	sub := r.Bus.SubscribeTasks(events.TaskFilter{}, r.buffer())
	out := make(chan *scheduler.DashboardStats, 1)
	go func() {
		defer close(out)
		defer func() { sub.Close() }()
		var last time.Time
		push := func() bool {
			st, err := r.Svc.DashboardStats(ctx)
			if err != nil {
				r.fail(ctx, err)
				return false
			}
			last = time.Now()
			return send(ctx, out, st)
		}
		if !push() {
			return
		}
		ticker := time.NewTicker(refresh)
		defer ticker.Stop()
		var due <-chan time.Time // non-nil while a coalesced push is pending
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-sub.C:
				if !ok {
					if !errors.Is(sub.Err(), events.ErrOverflow) {
						return
					}
					// Snapshots lose nothing by skipping events.
					sub = r.Bus.SubscribeTasks(events.TaskFilter{}, r.buffer())
				}
				if due == nil {
					due = time.After(max(interval-time.Since(last), 0))
				}
			case <-due:
				due = nil
				if !push() {
					return
				}
			case <-ticker.C:
				if due == nil && time.Since(last) >= refresh/2 && !push() {
					return
				}
			}
		}
	}()
	return out, nil
}
