package jobs

import (
	"context"

	"github.com/llmsched/llm-scheduler/internal/batch"
)

// waker sends the dispatcher's wake-ups (wake.go) in the background, so
// that an enqueue, and the submission waiting for it, does not wait for
// one more Redis call: a worker in the enqueuing process is released by
// the enqueue itself (idleGate.touch), and one elsewhere is woken a
// moment later, as before once the tasks are in asynq (a request is made
// after its enqueue returned, and sent after it was made). Requests that
// arrive while a round is being sent go out together in the next
// (internal/batch): one PUBLISH for any number of wake-ups, one
// wakeIfArmed per wake key.
//
// The dispatcher starts it (NewDispatcher) and stops it (Close), which
// sends what is still asked; a request after Close is sent by its caller.
type waker struct {
	publish     func(context.Context)                 // Dispatcher.wake
	wakeIfArmed func(ctx context.Context, key string) // Dispatcher.wakeKeyIfArmed
	rounds      *batch.Batcher[wakeRequest]
}

// wakeRequest asks for a wake-up (plain) or for the wake key key to be
// taken, waking if a worker set it.
type wakeRequest struct {
	plain bool
	key   string
}

func newWaker(publish func(context.Context), wakeIfArmed func(context.Context, string)) *waker {
	w := &waker{publish: publish, wakeIfArmed: wakeIfArmed}
	w.rounds = batch.New(w.round)
	return w
}

func (w *waker) start() { _ = w.rounds.Start(context.Background()) }

// ask asks for a wake-up (plain) or for the wake key key to be taken.
func (w *waker) ask(plain bool, key string) {
	w.rounds.Add(wakeRequest{plain: plain, key: key})
}

// round sends what was asked since the last one.
func (w *waker) round(ctx context.Context, reqs []wakeRequest) {
	for _, r := range reqs {
		if r.plain {
			// One wake-up wakes every idle worker, which then looks at
			// every queue: the armed keys need no separate wake-up.
			w.publish(ctx)
			return
		}
	}
	seen := make(map[string]struct{}, 1)
	for _, r := range reqs {
		if _, ok := seen[r.key]; !ok {
			seen[r.key] = struct{}{}
			w.wakeIfArmed(ctx, r.key)
		}
	}
}

// close stops the waker after sending what is still asked.
func (w *waker) close() { _ = w.rounds.Stop(context.Background()) }
