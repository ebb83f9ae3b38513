package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// Bus publishes events on Redis pub/sub and delivers what any process
// published to this process's subscribers.
//
// Messages reach this process's own subscribers when they are published,
// without the round trip through Redis (a task's answer reaches the front
// door request waiting for it in the same process at once); frames Redis
// echoes back from this bus are skipped (frame.go). Each process still
// sees its own messages in publish order and every other process's in
// the order Redis delivers them; as before, transitions of one task
// published by two processes at nearly the same time carry no order
// between them (subscribers compare a task event's From with what they
// last saw, or read the task).
type Bus struct {
	rdb       redis.UniversalClient
	prefix    string
	ch        string
	self      string // how this bus's frames begin
	tasks     *hub[TaskEvent]
	outputs   *hub[OutputChunk]
	log       *slog.Logger
	ready     chan struct{}
	onPublish func(TaskEvent)
	out       *outbox

	stopListen context.CancelFunc // set by Start
	listenDone chan struct{}
}

// NewBus returns a bus on rdb whose channels are named under prefix.
func NewBus(rdb redis.UniversalClient, prefix string, log *slog.Logger) *Bus {
	ch := Channel(prefix)
	self := originPrefix(uuid.NewString())
	return &Bus{
		rdb: rdb, prefix: prefix, ch: ch, self: string(self),
		tasks: newHub[TaskEvent](), outputs: newHub[OutputChunk](), log: log,
		ready: make(chan struct{}), out: newOutbox(rdb, ch, self, log),
	}
}

// OnPublish registers a hook called for every task event this process
// publishes (metrics, logs). Set it before use.
func (b *Bus) OnPublish(f func(TaskEvent)) { b.onPublish = f }

// PublishTask announces a transition to every process. It queues the
// event and returns at once (see outbox.go); the error is only for events
// that cannot be encoded.
func (b *Bus) PublishTask(ctx context.Context, e TaskEvent) error {
	if b.onPublish != nil {
		b.onPublish(e)
	}
	var local func()
	if b.tasks.count() > 0 {
		local = func() { b.tasks.send(e.TaskID, e) }
	}
	return b.publish(kindTask, e, local)
}

// PublishTasks announces many transitions; they leave in as few round
// trips as the outbox can (one per 1,000 events).
func (b *Bus) PublishTasks(ctx context.Context, es []TaskEvent) error {
	ms := make([]outMsg, 0, len(es))
	for _, e := range es {
		if b.onPublish != nil {
			b.onPublish(e)
		}
		raw, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("encode event: %w", err)
		}
		ms = append(ms, outMsg{kind: kindTask, raw: raw})
	}
	var local func()
	if b.tasks.count() > 0 {
		local = func() {
			for _, e := range es {
				b.tasks.send(e.TaskID, e)
			}
		}
	}
	b.out.push(local, ms...)
	return nil
}

// PublishOutput announces a streamed output chunk to every process, and
// keeps it for readers that come later (output.go).
func (b *Bus) PublishOutput(ctx context.Context, c OutputChunk) error {
	raw, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	k, err := b.keepOf(c)
	if err != nil {
		return err
	}
	var local func()
	if b.outputs.count() > 0 {
		local = func() { b.outputs.send(c.TaskID, c) }
	}
	b.out.push(local, outMsg{kind: kindOutput, raw: raw, keep: k})
	return nil
}

func (b *Bus) publish(kind byte, v any, local func()) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	b.out.push(local, outMsg{kind: kind, raw: raw})
	return nil
}

// Flush waits until every event published so far has reached Redis.
func (b *Bus) Flush(ctx context.Context) error { return b.out.flush(ctx) }

// SubscribeTasks delivers task events that pass the filter. buf <= 0 means
// DefaultBuffer.
func (b *Bus) SubscribeTasks(f TaskFilter, buf int) *Subscription[TaskEvent] {
	return b.tasks.subscribe(f.TaskID, buf, f.Match)
}

// SubscribeOutput delivers the output chunks of one task.
func (b *Bus) SubscribeOutput(taskID int, buf int) *Subscription[OutputChunk] {
	return b.outputs.subscribe(taskID, buf, nil)
}

// Subscribers counts this process's live subscriptions.
func (b *Bus) Subscribers() int { return b.tasks.count() + b.outputs.count() }

// Ready is closed once the bus listens on Redis.
func (b *Bus) Ready() <-chan struct{} { return b.ready }

// Start starts the bus: the sender of what this process publishes (events
// published before Start wait for it) and the listener on Redis, which
// reconnects after errors. Ready is closed once it listens. Stop stops
// both.
func (b *Bus) Start(ctx context.Context) error {
	if err := b.out.msgs.Start(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	b.stopListen, b.listenDone = cancel, make(chan struct{})
	go func() {
		defer close(b.listenDone)
		b.listen(ctx)
	}()
	return nil
}

// Stop stops listening and sends what is still queued to Redis, or gives
// up when ctx ends. Events published after Stop are sent by the publisher.
func (b *Bus) Stop(ctx context.Context) error {
	var errs []error
	if b.stopListen != nil {
		b.stopListen()
		select {
		case <-b.listenDone:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("event bus listener: %w", ctx.Err()))
		}
	}
	if err := b.out.msgs.Stop(ctx); err != nil {
		b.log.Warn("event bus: events still queued at shutdown were not sent", "err", err)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// listen listens on Redis until ctx ends, reconnecting after errors.
func (b *Bus) listen(ctx context.Context) {
	first := true
	for ctx.Err() == nil {
		ps := b.rdb.Subscribe(ctx, b.ch)
		if _, err := ps.Receive(ctx); err != nil {
			_ = ps.Close()
			if ctx.Err() == nil {
				b.log.Warn("event bus: subscribe failed, retrying", "err", err)
				sleep(ctx, time.Second)
			}
			continue
		}
		if first {
			close(b.ready)
			first = false
		}
		b.consume(ctx, ps)
		_ = ps.Close()
	}
}

func (b *Bus) consume(ctx context.Context, ps *redis.PubSub) {
	ch := ps.Channel(redis.WithChannelSize(4096), redis.WithChannelHealthCheckInterval(10*time.Second))
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			b.dispatch(m)
		}
	}
}

// dispatch hands a frame's messages to this process's subscribers. With
// none of a kind, those messages are not even decoded.
func (b *Bus) dispatch(m *redis.Message) {
	if strings.HasPrefix(m.Payload, b.self) {
		return // ours: delivered here when published
	}
	var onTask func(TaskEvent)
	var onOutput func(OutputChunk)
	if b.tasks.count() > 0 {
		onTask = func(e TaskEvent) { b.tasks.send(e.TaskID, e) }
	}
	if b.outputs.count() > 0 {
		onOutput = func(c OutputChunk) { b.outputs.send(c.TaskID, c) }
	}
	if onTask == nil && onOutput == nil {
		return
	}
	if err := Decode([]byte(m.Payload), onTask, onOutput); err != nil {
		b.log.Error("event bus: bad message", "err", err)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
