// Package batch sends work in batches from one background goroutine: what
// queued while the previous flush was in flight goes out together in the
// next. It adds no waiting: alone, an item is flushed at once; under load
// batches grow by themselves, and one flush is in flight at a time.
//
// The jobs releaser, the jobs waker and the events outbox use it. The
// scheduler's group commit (internal/scheduler/group.go) does not: its callers wait
// for their own results and the first one runs the flush itself, which
// saves a goroutine switch on the hot path that a background loop would add.
package batch

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
)

// Batcher queues items and flushes them from its own goroutine, started by
// Start and stopped by Stop. Items added before Start wait for it; items
// added after Stop are flushed by the caller at once (still one flush at a
// time), so nothing added is ever lost.
type Batcher[T any] struct {
	flush func(ctx context.Context, items []T)

	// flushing is held around every flush: one is in flight at a time,
	// the loop's or, after Stop, a caller's.
	flushing sync.Mutex

	mu      sync.Mutex
	queue   []T
	spare   []T    // the last batch's slice, cleared, for the next queue
	added   uint64 // items ever queued
	done    uint64 // items flushed
	notify  chan struct{}
	state   int // idle, running, stopped
	ctx     context.Context
	kick    chan struct{} // something is queued (capacity 1)
	parked  atomic.Bool   // the loop waits for a kick
	stop    chan struct{}
	stopped chan struct{} // closed when the loop has returned
}

const (
	idle = iota
	running
	stopped
)

// New returns a batcher that hands each batch, in the order its items were
// added, to flush. flush must not keep the slice: the batcher reuses it.
func New[T any](flush func(ctx context.Context, items []T)) *Batcher[T] {
	return &Batcher[T]{flush: flush, kick: make(chan struct{}, 1),
		stop: make(chan struct{}), stopped: make(chan struct{})}
}

// ErrStopped is returned by Start after Stop.
var ErrStopped = errors.New("batch: stopped")

// Start starts the goroutine that flushes. Flushes run under ctx without
// its cancellation (Stop ends the loop, and still flushes what is queued);
// flush bounds each one itself. Starting twice is a no-op.
func (b *Batcher[T]) Start(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case running:
		return nil
	case stopped:
		return ErrStopped
	}
	b.state = running
	b.ctx = context.WithoutCancel(ctx)
	go b.loop(b.ctx)
	if len(b.queue) > 0 {
		b.wake()
	}
	return nil
}

// Stop flushes what is queued and waits for the goroutine to return, or
// for ctx to end (the error is then ctx's, and the last flush finishes in
// the background). A batcher never started flushes its queue in the
// caller. Stopping twice is a no-op.
func (b *Batcher[T]) Stop(ctx context.Context) error {
	b.mu.Lock()
	was := b.state
	b.state = stopped
	if b.ctx == nil {
		b.ctx = context.WithoutCancel(ctx)
	}
	b.mu.Unlock()
	switch was {
	case idle:
		close(b.stop)
		close(b.stopped)
		b.flushQueued(b.ctx)
		return nil
	case running:
		close(b.stop)
	}
	select {
	case <-b.stopped:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Add queues one item.
func (b *Batcher[T]) Add(item T) {
	b.Update(func(q []T) []T { return append(q, item) })
}

// Update changes the queue under the batcher's lock: fn gets the items
// queued since the last flush and returns the queue to flush next (it may
// append, or leave the queue as it is to drop what it was given). Work
// done inside fn is ordered with every other Update, which lets a caller
// keep its own side effects in queue order.
func (b *Batcher[T]) Update(fn func(queued []T) []T) {
	b.mu.Lock()
	if b.queue == nil {
		b.queue, b.spare = b.spare, nil
	}
	n := len(b.queue)
	b.queue = fn(b.queue)
	b.added += uint64(len(b.queue) - n)
	st := b.state
	b.mu.Unlock()
	switch st {
	case running:
		b.wake()
	case stopped:
		b.flushQueued(b.ctx)
	}
}

// wake asks the loop for a round; a round already asked for takes the new
// items too.
//
// A kick readies a parked loop on this goroutine's processor, where it
// would run only once the caller blocks: a worker that publishes a task's
// start and goes straight on to build its completion would hold the start
// event back for that long (0.2-0.4 ms on an idle host). So a caller that
// wakes a parked loop yields once and the flush leaves first. A busy loop
// takes the items in its next round, as before, and costs no yield.
func (b *Batcher[T]) wake() {
	select {
	case b.kick <- struct{}{}:
		if b.parked.Load() {
			runtime.Gosched()
		}
	default:
	}
}

// Wait waits until every item queued before the call has been flushed, or
// ctx ends.
func (b *Batcher[T]) Wait(ctx context.Context) error {
	b.mu.Lock()
	target := b.added
	for b.done < target {
		if b.notify == nil {
			b.notify = make(chan struct{})
		}
		ch := b.notify
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		b.mu.Lock()
	}
	b.mu.Unlock()
	return nil
}

func (b *Batcher[T]) loop(ctx context.Context) {
	defer close(b.stopped)
	for {
		b.parked.Store(true)
		select {
		case <-b.kick:
			b.parked.Store(false)
			b.flushQueued(ctx)
		case <-b.stop:
			b.flushQueued(ctx)
			return
		}
	}
}

// flushQueued flushes everything queued, in one batch.
func (b *Batcher[T]) flushQueued(ctx context.Context) {
	b.flushing.Lock()
	defer b.flushing.Unlock()
	b.mu.Lock()
	batch := b.queue
	b.queue = nil
	b.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	b.flush(ctx, batch)
	clear(batch)
	b.mu.Lock()
	b.done += uint64(len(batch))
	if b.spare == nil {
		b.spare = batch[:0]
	}
	if b.notify != nil {
		close(b.notify)
		b.notify = nil
	}
	b.mu.Unlock()
}
