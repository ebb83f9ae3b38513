package jobs

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/llmsched/llm-scheduler/internal/loop"
)

// heartbeats renews the slot leases of a worker's running attempts from
// one loop: every third of the lease TTL it renews each lease not renewed
// for a sixth of it, so a lease is renewed at most half a TTL after the
// last renewal (or the attempt's start). An attempt registers when it
// starts and unregisters when it ends.
//
// It replaces a goroutine, a ticker and a context per attempt, 1.8% of an
// in-process CPU profile of the bench's end-to-end run, spent on attempts
// that end long before their first renewal; a worker running thousands
// of long calls now keeps one timer.
type heartbeats struct {
	slots *Slots
	every time.Duration // the lease TTL / 3
	log   *slog.Logger
	loop  loop.Loop

	mu   sync.Mutex
	held map[*heldLease]struct{}
}

// heldLease is one running attempt's lease: task on model, last renewed
// (or granted) at renewed. mu is held around its renewal, so that the
// attempt's release waits for a renewal on its way: the heartbeat
// script re-creates a missing lease, and one landing after the slot's
// release would hold the slot for a whole TTL.
type heldLease struct {
	model, task int
	mu          sync.Mutex
	renewed     time.Time
	gone        bool
}

func newHeartbeats(slots *Slots, leaseTTL time.Duration, log *slog.Logger) *heartbeats {
	return &heartbeats{slots: slots, every: leaseTTL / 3, log: log, held: map[*heldLease]struct{}{}}
}

// start starts the loop; stop ends it (after the handlers have returned:
// a handler still running in the shutdown grace keeps its lease).
func (h *heartbeats) start() { _ = h.loop.Start(context.Background(), h.run) }
func (h *heartbeats) stop()  { _ = h.loop.Stop(context.Background()) }

// hold registers the lease of task's attempt on model until the returned
// function is called.
func (h *heartbeats) hold(model, task int) (release func()) {
	l := &heldLease{model: model, task: task, renewed: time.Now()}
	h.mu.Lock()
	h.held[l] = struct{}{}
	h.mu.Unlock()
	return func() {
		h.mu.Lock()
		delete(h.held, l)
		h.mu.Unlock()
		l.mu.Lock()
		l.gone = true
		l.mu.Unlock()
	}
}

func (h *heartbeats) run(ctx context.Context) {
	t := time.NewTicker(h.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			h.round(ctx, now)
		}
	}
}

// round renews the leases not renewed for half a period.
func (h *heartbeats) round(ctx context.Context, now time.Time) {
	h.mu.Lock()
	held := make([]*heldLease, 0, len(h.held))
	for l := range h.held {
		held = append(held, l)
	}
	h.mu.Unlock()
	for _, l := range held {
		if ctx.Err() != nil {
			return
		}
		h.renew(ctx, l, now)
	}
}

// renew renews l unless it was renewed less than half a period ago or
// its attempt has ended.
func (h *heartbeats) renew(ctx context.Context, l *heldLease, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gone || now.Sub(l.renewed) < h.every/2 {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, h.every)
	defer cancel()
	ok, err := h.slots.Heartbeat(cctx, l.model, l.task)
	switch {
	case err != nil:
		h.log.Warn("renew model slot lease", "task_id", l.task, "err", err)
		return
	case !ok:
		h.log.Warn("model slot lease had expired and was renewed", "task_id", l.task, "model_id", l.model)
	}
	l.renewed = now
}
