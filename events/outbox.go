package events

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// outbox publishes the bus's messages from one background goroutine, in
// order, packing whatever queued up while the previous round trip was in
// flight into frames (frame.go) sent in one round trip.
//
// Publishing synchronously put one Redis round trip per event (created,
// running, output chunks, completed: five per task) on the critical path
// of every submission and every worker; on a loaded machine each round
// trip waits for Redis to be scheduled, and profiles showed most worker
// goroutines parked in PUBLISH. Now a transition costs an append to a
// slice, and under load hundreds of events share one round trip. Events
// of one process keep their order (one queue, one sender). A process that
// dies loses at most what was queued; the database holds the state, and
// subscribers read it when they (re)subscribe, as before.
type outbox struct {
	rdb    redis.UniversalClient
	ch     string
	origin []byte // every frame's first entry (originPrefix)
	log    *slog.Logger

	mu      sync.Mutex
	queue   []outMsg
	running bool
	pushed  uint64 // messages ever queued
	done    uint64 // messages sent (or dropped)
	wake    chan struct{}
}

type outMsg struct {
	kind byte // kindTask, kindOutput, or kindKeep (stored, not published)
	raw  []byte
	// keep, when set, stores the message's output chunk in its attempt's
	// list (output.go) before the frame that carries it is published.
	keep *kept
}

// maxQueued bounds the outbox while Redis does not answer.
const maxQueued = 1 << 17

// sendMax bounds the messages of one round trip.
const sendMax = 1000

func newOutbox(rdb redis.UniversalClient, ch string, origin []byte, log *slog.Logger) *outbox {
	return &outbox{rdb: rdb, ch: ch, origin: origin, log: log, wake: make(chan struct{}, 1)}
}

// push queues messages and makes sure the sender runs. local, when set,
// delivers them to this process's subscribers: it runs under the queue's
// lock, so local subscribers see messages in the order Redis gets them,
// whatever goroutines publish them.
func (o *outbox) push(local func(), ms ...outMsg) {
	o.mu.Lock()
	if local != nil {
		local()
	}
	if len(o.queue)+len(ms) > maxQueued {
		o.mu.Unlock()
		o.log.Warn("event bus: outbox full (redis unreachable?); dropping events", "events", len(ms))
		return
	}
	o.queue = append(o.queue, ms...)
	o.pushed += uint64(len(ms))
	start := !o.running
	o.running = true
	o.mu.Unlock()
	if start {
		go o.loop()
		return
	}
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// loop sends until the queue stays empty for a second, then exits (the
// next push starts it again), so an idle bus holds no goroutine.
func (o *outbox) loop() {
	idle := time.NewTimer(time.Second)
	defer idle.Stop()
	for {
		o.mu.Lock()
		batch := o.queue
		o.queue = nil
		o.mu.Unlock()
		if len(batch) == 0 {
			idle.Reset(time.Second)
			select {
			case <-o.wake:
				continue
			case <-idle.C:
				o.mu.Lock()
				if len(o.queue) == 0 {
					o.running = false
					o.mu.Unlock()
					return
				}
				o.mu.Unlock()
				continue
			}
		}
		for start := 0; start < len(batch); start += sendMax {
			o.send(batch[start:min(start+sendMax, len(batch))])
		}
		o.mu.Lock()
		o.done += uint64(len(batch))
		o.mu.Unlock()
	}
}

func (o *outbox) send(batch []outMsg) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fs := frames(o.origin, batch)
	pipe := o.rdb.Pipeline()
	if keepOutput(ctx, pipe, batch) {
		if _, cluster := o.rdb.(*redis.ClusterClient); cluster {
			// A cluster pipeline runs each node's share on its own; the
			// lists must be written before the frames are published
			// (output.go), so they go first, on their own.
			if _, err := pipe.Exec(ctx); err != nil {
				o.log.Warn("event bus: storing output chunks failed; late subscribers miss them", "err", err)
			}
			pipe = o.rdb.Pipeline()
		}
	}
	for _, f := range fs {
		pipe.Publish(ctx, o.ch, f)
	}
	_, err := pipe.Exec(ctx)
	if err != nil {
		o.log.Warn("event bus: publish failed; subscribers read the current state when they resubscribe",
			"events", len(batch), "err", err)
	}
}

// flush waits until everything queued before the call was sent, or ctx ends.
func (o *outbox) flush(ctx context.Context) error {
	o.mu.Lock()
	target := o.pushed
	o.mu.Unlock()
	for {
		o.mu.Lock()
		sent := o.done
		o.mu.Unlock()
		if sent >= target {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}
