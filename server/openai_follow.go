package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/events"
	"github.com/llmsched/llm-scheduler/internal/scheduler"
)

// A front-door request follows its task on the event bus, whichever
// process runs it: subscribed once the task is stored and before it is
// queued (scheduler.NewTask.OnStored), so no transition and no output
// chunk can pass unseen.

// outputBuffer is how many output chunks a follower holds: the worker
// sends one every 50 ms at most while a provider streams, so this is
// minutes of slack for a reader that writes to a slow client.
const outputBuffer = 1024

// followCheck is how often a follower also reads its task from the
// database, in case the bus lost its terminal event (a Redis reconnect),
// and settleWait how long it then waits for the bus to deliver the
// task's last chunks.
const (
	followCheck = 2 * time.Second
	settleWait  = time.Second
)

// follower receives one task's transitions and, if asked, its output.
type follower struct {
	bus     *events.Bus
	outputs bool

	mu    sync.Mutex
	id    int
	tasks *events.Subscription[events.TaskEvent]
	outs  *events.Subscription[events.OutputChunk]
}

func newFollower(bus *events.Bus, outputs bool) *follower {
	return &follower{bus: bus, outputs: outputs}
}

// stored is the task's OnStored hook.
func (f *follower) stored(t *ent.Task) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.id = t.ID
	f.tasks = f.bus.SubscribeTasks(events.TaskFilter{TaskID: t.ID}, events.TaskBuffer)
	if f.outputs {
		f.outs = f.bus.SubscribeOutput(t.ID, outputBuffer)
	}
}

// taskID is the followed task's id, 0 before it was stored.
func (f *follower) taskID() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.id
}

func (f *follower) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.tasks != nil {
		f.tasks.Close()
	}
	if f.outs != nil {
		f.outs.Close()
	}
}

// ending is how a followed task ended.
type ending struct {
	// task is the task as stored once it ended.
	task *ent.Task
	// last is the last Done output chunk seen (zero when none was).
	last events.OutputChunk
	// lostOutput: the output subscription overflowed, chunks are missing.
	lostOutput bool
}

// errQueueTimeout is returned by wait when the task was cancelled for
// waiting past its queue timeout.
var errQueueTimeout = errors.New("queue timeout")

// wait follows the task until it ends, handing each output chunk to
// onChunk (which may be nil). The task is cancelled when the client goes
// away (ctx ends) or when it has not started by queueDeadline.
//
// The ended task is read from the database, except when the bus already
// told all the caller needs: answered (nil: never) says, once the last
// chunks are delivered, that the caller answers from the provider's own
// answer; then a task that the bus saw complete with that answer's
// attempt is not read again (ending.task then holds its id, status and
// attempt count only).
func (d *openaiDoor) wait(ctx context.Context, f *follower, queueDeadline time.Time, onChunk func(events.OutputChunk) error, answered func(ending) bool) (ending, error) {
	w := &waiter{d: d, f: f, id: f.taskID(), tasks: f.tasks.C, onChunk: onChunk, answered: answered}
	if f.outs != nil {
		w.outs = f.outs.C
	}
	w.queue = time.NewTimer(time.Until(queueDeadline))
	defer w.queue.Stop()
	w.queueC = w.queue.C
	w.check = time.NewTicker(followCheck)
	defer w.check.Stop()
	for {
		select {
		case <-ctx.Done():
			d.cancel(w.id, "the client went away")
			return w.end, ctx.Err()
		case <-w.queueC:
			if err := w.queueTimeout(ctx); err != nil {
				return w.end, err
			}
		case e, ok := <-w.tasks:
			if !ok {
				w.resubscribe()
				continue
			}
			if e.To == domain.StatusRunning {
				w.stopQueueTimer()
			}
			if e.To.Terminal() {
				return w.finish(ctx, &e)
			}
		case c, ok := <-w.outs:
			if !ok {
				w.end.lostOutput, w.outs = true, nil
				continue
			}
			if err := w.deliver(c); err != nil {
				return w.end, err
			}
		case <-w.check.C:
			w.checkStored(ctx)
		case <-w.settle:
			return w.finish(ctx, nil)
		}
	}
}

// waiter is the state of one wait: the followed task's channels, the
// queue timer (nil channel once the task started), the database check and
// the ending seen so far.
type waiter struct {
	d        *openaiDoor
	f        *follower
	id       int
	tasks    <-chan events.TaskEvent
	outs     <-chan events.OutputChunk
	queue    *time.Timer
	queueC   <-chan time.Time
	check    *time.Ticker
	settle   <-chan time.Time // the database says it ended; waiting for the bus
	onChunk  func(events.OutputChunk) error
	answered func(ending) bool
	end      ending
}

func (w *waiter) deliver(c events.OutputChunk) error {
	if c.Done {
		w.end.last = c
	}
	if w.onChunk != nil {
		return w.onChunk(c)
	}
	return nil
}

func (w *waiter) stopQueueTimer() {
	if w.queueC != nil {
		w.queue.Stop()
		w.queueC = nil
	}
}

// queueTimeout cancels the task that has not started by its queue
// deadline: errQueueTimeout once cancelled, nil when it started or ended
// meanwhile (its events tell).
func (w *waiter) queueTimeout(ctx context.Context) error {
	w.queueC = nil
	_, err := w.d.svc.CancelTask(context.WithoutCancel(ctx), w.id)
	switch {
	case err == nil:
		w.d.log.InfoContext(ctx, "openai front door: task cancelled past its queue timeout", "task_id", w.id)
		return errQueueTimeout
	case scheduler.CodeOf(err) != scheduler.CodeConflict:
		return err
	}
	return nil
}

// resubscribe follows the task again after its subscription overflowed
// (a reader this far behind is unlikely with a few transitions per
// attempt), and reads the stored state at once.
func (w *waiter) resubscribe() {
	w.f.mu.Lock()
	w.f.tasks = w.f.bus.SubscribeTasks(events.TaskFilter{TaskID: w.id}, events.TaskBuffer)
	w.tasks = w.f.tasks.C
	w.f.mu.Unlock()
	w.check.Reset(time.Millisecond)
}

// checkStored reads the task from the database; once it ended there, the
// bus gets settleWait to deliver the last chunks and final transition.
func (w *waiter) checkStored(ctx context.Context) {
	t, err := w.d.svc.GetTask(ctx, w.id)
	if err != nil {
		return // the database is away; the bus may still tell
	}
	if t.Status != domain.StatusPending {
		w.stopQueueTimer()
	}
	if t.Status.Terminal() && w.settle == nil {
		w.settle = time.After(settleWait)
	}
}

// finish delivers the chunks still buffered and returns how the task
// ended (final is its terminal transition, nil when the database told).
func (w *waiter) finish(ctx context.Context, final *events.TaskEvent) (ending, error) {
	// The task's last chunks were delivered before its final transition
	// (one channel keeps their order): take those still buffered.
	for w.outs != nil {
		select {
		case c, ok := <-w.outs:
			if !ok {
				w.end.lostOutput = w.f.outs.Err() != nil
				w.outs = nil
				continue
			}
			if err := w.deliver(c); err != nil {
				return w.end, err
			}
		default:
			w.outs = nil
		}
	}
	if final != nil && final.To == domain.StatusCompleted && w.end.last.Done && w.end.last.Attempt == final.Attempt &&
		w.answered != nil && w.answered(w.end) {
		// The completed transition is published once it is stored, after
		// the attempt's last chunk: what a read would return.
		w.end.task = &ent.Task{ID: w.id, Status: final.To, Attempts: final.Attempt}
		return w.end, nil
	}
	t, err := w.d.svc.GetTask(context.WithoutCancel(ctx), w.id)
	w.end.task = t
	return w.end, err
}

// cancel cancels a task whose caller no longer waits for it. A task that
// already ended is left as it is.
func (d *openaiDoor) cancel(id int, why string) {
	if id == 0 {
		return
	}
	ctx, done := context.WithTimeout(context.Background(), 10*time.Second)
	defer done()
	if _, err := d.svc.CancelTask(ctx, id); err != nil && scheduler.CodeOf(err) != scheduler.CodeConflict {
		d.log.Warn("openai front door: cancel task", "task_id", id, "why", why, "err", err)
	}
}

// queueTimeoutError is what a client whose task waited too long is told.
func queueTimeoutError(id int, d time.Duration) *openAIError {
	return &openAIError{Status: http.StatusRequestTimeout, Type: "timeout_error", Code: "queue_timeout",
		Message: fmt.Sprintf("task %d did not start within its queue timeout of %s (X-Queue-Timeout or server.openai_queue_timeout) and was cancelled", id, d)}
}

// endError is the error a client gets for a task that ended without an
// answer. A provider's error passes through with its status when the
// task failed on it; a task cancelled by someone else is a 400 (an SDK
// would retry a 5xx, undoing the cancel).
func endError(end ending) *openAIError {
	t := end.task
	switch t.Status {
	case domain.StatusCancelled:
		return &openAIError{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "task_cancelled",
			Message: fmt.Sprintf("task %d was cancelled: %s", t.ID, t.Error)}
	case domain.StatusFailed:
		status := http.StatusInternalServerError
		if l := end.last; l.Done && l.Attempt == t.Attempts && l.Status >= 400 && l.Status <= 599 {
			status = l.Status
		}
		return &openAIError{Status: status, Type: openAIType(status), Code: "task_failed",
			Message: fmt.Sprintf("task %d failed after %d attempt(s): %s", t.ID, t.Attempts-t.AttemptBase, t.Error)}
	}
	return &openAIError{Status: http.StatusInternalServerError, Type: "server_error", Code: "internal_error",
		Message: fmt.Sprintf("task %d ended as %s", t.ID, t.Status)}
}
