package jobs

import (
	"context"
	"sync"
)

// waker sends the dispatcher's wake-ups (wake.go) in the background, so
// that an enqueue, and the submission waiting for it, does not wait for
// one more Redis call: a worker in the enqueuing process is released by
// the enqueue itself (idleGate.touch), and one elsewhere is woken a
// moment later, as before once the tasks are in asynq (a request is made
// after its enqueue returned, and sent after it was made). Requests that
// arrive while a round is being sent go out together in the next: one
// PUBLISH for any number of wake-ups, one wakeIfArmed per wake key.
//
// The dispatcher starts it (NewDispatcher) and stops it (Close), which
// sends what is still asked; a request after Close is sent by its caller.
type waker struct {
	publish     func(context.Context)                 // Dispatcher.wake
	wakeIfArmed func(ctx context.Context, key string) // Dispatcher.wakeKeyIfArmed

	mu     sync.Mutex
	plain  bool                // a wake-up is asked
	armed  map[string]struct{} // wake keys to take, waking if a worker set one
	closed bool

	kick chan struct{} // a request is waiting (capacity 1)
	stop chan struct{}
	done chan struct{}
}

func newWaker(publish func(context.Context), wakeIfArmed func(context.Context, string)) *waker {
	return &waker{publish: publish, wakeIfArmed: wakeIfArmed, armed: map[string]struct{}{},
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

func (w *waker) start() { go w.run() }

// ask asks for a wake-up (plain) or for the wake key key to be taken. It
// reports false once the waker is stopped: the caller sends it itself.
func (w *waker) ask(plain bool, key string) bool {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return false
	}
	if plain {
		w.plain = true
	} else {
		w.armed[key] = struct{}{}
	}
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default: // a round is already asked for; it takes this request too
	}
	return true
}

func (w *waker) run() {
	defer close(w.done)
	for {
		select {
		case <-w.kick:
			w.round()
		case <-w.stop:
			w.round()
			return
		}
	}
}

// round sends what was asked since the last one.
func (w *waker) round() {
	w.mu.Lock()
	plain := w.plain
	w.plain = false
	var keys map[string]struct{}
	if len(w.armed) > 0 {
		// The round takes the map; asks from now on fill a new one.
		keys, w.armed = w.armed, map[string]struct{}{}
	}
	w.mu.Unlock()
	ctx := context.Background()
	if plain {
		// One wake-up wakes every idle worker, which then looks at every
		// queue: the armed keys need no separate wake-up.
		w.publish(ctx)
		return
	}
	for k := range keys {
		w.wakeIfArmed(ctx, k)
	}
}

// close stops the waker after sending what is still asked.
func (w *waker) close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	<-w.done
}
