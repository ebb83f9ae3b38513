package events

import (
	"context"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llmsched/llm-scheduler/internal/batch"
)

// outbox publishes the bus's messages from one background goroutine, in
// order, packing whatever queued up while the previous round trip was in
// flight (internal/batch) into frames (frame.go) sent in one round trip.
// The bus starts it (Bus.Start) and drains it when it stops (Bus.Stop).
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
	msgs   *batch.Batcher[outMsg]
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
	o := &outbox{rdb: rdb, ch: ch, origin: origin, log: log}
	o.msgs = batch.New(o.sendAll)
	return o
}

// push queues messages for the sender. local, when set, delivers them to
// this process's subscribers: it runs under the queue's lock, so local
// subscribers see messages in the order Redis gets them, whatever
// goroutines publish them.
func (o *outbox) push(local func(), ms ...outMsg) {
	dropped := false
	o.msgs.Update(func(q []outMsg) []outMsg {
		if local != nil {
			local()
		}
		if len(q)+len(ms) > maxQueued {
			dropped = true
			return q
		}
		return append(q, ms...)
	})
	if dropped {
		o.log.Warn("event bus: outbox full (redis unreachable?); dropping events", "events", len(ms))
	}
}

// sendAll sends a batch, sendMax messages a round trip.
func (o *outbox) sendAll(_ context.Context, batch []outMsg) {
	for start := 0; start < len(batch); start += sendMax {
		o.send(batch[start:min(start+sendMax, len(batch))])
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
func (o *outbox) flush(ctx context.Context) error { return o.msgs.Wait(ctx) }
