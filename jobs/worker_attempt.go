package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/providers"
	"github.com/llmsched/llm-scheduler/internal/scheduler"
)

// buildRequest builds a task's provider request. It is a variable so that
// a test can count the builds: one per delivery that reaches the provider
// or the rate limiter.
var buildRequest = providers.BuildRequest

// attemptRequest is the provider request of a task's next attempt, built
// once per delivery (requestOf): the rate limiter estimates its tokens
// before the attempt and after it, and the provider runs it.
type attemptRequest struct {
	req providers.Request
	// err says why the task makes no request: the attempt then fails
	// permanently, and the rate limiter estimates from the prompt alone.
	err error
}

// requestOf builds the request of t's next attempt (StartAttempt counts
// it as attempt t.Attempts+1).
func requestOf(t *ent.Task) attemptRequest {
	req, err := buildRequest(t.ID, t.Attempts+1, t.Type, t.Prompt, t.Params)
	return attemptRequest{req: req, err: err}
}

// attempt is one run of a task on a model, as run's steps share it.
type attempt struct {
	t       *ent.Task // as it was delivered
	running *ent.Task // as StartAttempt left it (status running, attempts counted)
	att     *ent.Attempt
	m       *ent.Model
	rt      scheduler.Route
	req     attemptRequest
	res     providers.Result
	elapsed time.Duration
}

// run runs one attempt of a task that holds a slot on m: it records the
// start, calls the provider with the request built for this delivery,
// and stores the outcome. Unless a step handed it on itself, the slot is
// freed when run returns.
func (w *Worker) run(ctx context.Context, t *ent.Task, m *ent.Model, rt scheduler.Route, req attemptRequest) (retErr error) {
	released := false
	defer func() {
		if released {
			return
		}
		// The slot is handed on in the background, batched with other
		// finished tasks' (release.go): the handler (one of the
		// process's max_workers) returns to asynq for its next task at
		// once. Shutdown waits for it (inflight).
		w.releases.add(m, t.ID)
	}()
	a, othersSlot, err := w.startAttempt(ctx, t, m, rt)
	if a == nil {
		released = othersSlot
		return err
	}
	a.req = req
	// The worker's heartbeats renew the slot's lease while the attempt
	// runs; the release (deferred above, so it runs after this) is queued
	// once no renewal can follow it.
	unhold := w.beats.hold(m.ID, t.ID)
	defer unhold()

	started := time.Now()
	var streamed bool
	defer func() {
		if streamed {
			// The outcome is stored (or the task went back to its queue):
			// the chunks kept for late readers may go (internal/events/output.go).
			w.bus.ForgetOutput(t.ID, a.running.Attempts)
		}
	}()
	res, perr := w.call(ctx, a.running, m, a.req, w.timeoutOf(t), &streamed)
	a.res, a.elapsed = res, time.Since(started)
	if perr == nil {
		return w.completed(ctx, a)
	}
	if ctx.Err() != nil {
		return w.stopped(ctx, a, perr)
	}
	released, err = w.failed(ctx, a, perr)
	return err
}

// startAttempt records the attempt's start. When it cannot start, it
// returns no attempt, and othersSlot says whether the slot now belongs to
// another delivery of the task (not this one's to free).
func (w *Worker) startAttempt(ctx context.Context, t *ent.Task, m *ent.Model, rt scheduler.Route) (a *attempt, othersSlot bool, err error) {
	due := t.CreatedAt
	if t.NextAttemptAt != nil {
		due = *t.NextAttemptAt
	}
	running, att, err := w.svc.StartAttempt(ctx, t, m.ID, w.name)
	if err != nil {
		if scheduler.CodeOf(err) == scheduler.CodeConflict {
			// Cancelled, or started by another delivery of this task
			// meanwhile: the slot is then that worker's, not ours to free.
			if cur, gerr := w.svc.GetTask(ctx, t.ID); gerr == nil && cur.Status == domain.StatusRunning {
				othersSlot = true
			}
			return nil, othersSlot, nil
		}
		return nil, false, err
	}
	if w.hooks.Picked != nil {
		w.hooks.Picked(m.ID, time.Since(due))
	}
	return &attempt{t: t, running: running, att: att, m: m, rt: rt}, false, nil
}

// timeoutOf is how long an attempt of t may run.
func (w *Worker) timeoutOf(t *ent.Task) time.Duration {
	if t.TimeoutSeconds != nil {
		return time.Duration(*t.TimeoutSeconds) * time.Second
	}
	return w.cfg.Queue.TaskTimeout.D()
}

// finished tells the hooks how the attempt ended.
func (w *Worker) finished(a *attempt, outcome, kind string) {
	if w.hooks.Finished != nil {
		w.hooks.Finished(a.m.ID, outcome, kind, a.elapsed, a.res.Usage)
	}
}

// completed stores a successful attempt.
func (w *Worker) completed(ctx context.Context, a *attempt) error {
	bg := context.WithoutCancel(ctx)
	res, m := a.res, a.m
	w.settleRate(bg, a.t, m, a.req, res.Usage)
	err := w.persist(ctx, a.t.ID, func() error {
		return w.svc.CompleteAttempt(bg, a.running, a.att, scheduler.Outcome{
			Output: res.Output, Embedding: res.Embedding,
			PromptTokens: res.Usage.PromptTokens, CompletionTokens: res.Usage.CompletionTokens,
			Cost: scheduler.AttemptCost(m, res.Usage.PromptTokens, res.Usage.CompletionTokens), Estimated: res.TokenSource == providers.TokensEstimated,
			TokenSource: res.TokenSource, FinishReason: res.FinishReason,
		})
	})
	w.finished(a, "completed", "")
	if err != nil && scheduler.CodeOf(err) != scheduler.CodeConflict {
		return err
	}
	return nil
}

// stopped records an attempt asynq cancelled: a user cancel, or this
// worker shutting down (the task then returns to its queue).
func (w *Worker) stopped(ctx context.Context, a *attempt, perr error) error {
	bg := context.WithoutCancel(ctx)
	partial := providers.PartialOf(perr)
	cur, gerr := w.svc.GetTask(bg, a.t.ID)
	if gerr == nil && cur.Status == domain.StatusCancelled {
		w.svc.CancelledAttempt(bg, a.att, partial)
		w.finished(a, "cancelled", "cancelled")
		return nil
	}
	if err := w.svc.InterruptAttempt(bg, a.running, a.att, "worker stopped during the attempt; the task returns to its queue"); err != nil {
		w.log.Warn("hand interrupted task back", "task_id", a.t.ID, "err", err)
	}
	w.finished(a, "interrupted", "interrupted")
	return ctx.Err()
}

// failed stores a failed attempt and decides what comes next: the task
// fails, or retries after a delay (here or on a fallback), its slot freed
// meanwhile (released: run must not free it again).
func (w *Worker) failed(ctx context.Context, a *attempt, perr error) (released bool, err error) {
	bg := context.WithoutCancel(ctx)
	t, m := a.t, a.m
	kind, f, retryAfter := w.failureOf(a, perr)
	used := scheduler.AttemptsUsed(a.running)
	final := kind == providers.KindPermanent || !a.rt.More(used) // retries left here or on a fallback
	var delay time.Duration
	if !final {
		delay = w.retry.routeDelay(a.rt, used, retryAfter)
		f.RetryAt = time.Now().Add(delay)
	}
	if kind == providers.KindRateLimited {
		// A 429 backs the whole model off: for as long as the provider
		// asked, else for the retry policy's delay (either capped at
		// queue.max_retry_delay).
		wait := w.retry.Delay(a.rt.OnModel(used), retryAfter)
		if err := w.disp.slots.Backoff(bg, m.ID, time.Now().Add(wait)); err != nil {
			w.log.Warn("back model off", "model_id", m.ID, "err", err)
		}
	}
	w.finished(a, "failed", string(kind))
	// One line per failed attempt says what went wrong and what happens
	// next; provider messages are already scrubbed of the model's secrets.
	logArgs := []any{"task_id", t.ID, "model_id", m.ID, "attempt", a.running.Attempts, "error_kind", string(kind), "error", perr.Error()}
	if final {
		w.log.Warn("attempt failed; the task fails", logArgs...)
	} else {
		w.log.Warn("attempt failed; retrying", append(logArgs, "retry_in", delay.Round(time.Millisecond).String())...)
	}
	if err := w.persist(ctx, t.ID, func() error { return w.svc.FailAttempt(bg, a.running, a.att, f) }); err != nil {
		if scheduler.CodeOf(err) == scheduler.CodeConflict {
			return false, nil
		}
		return false, err
	}
	if final {
		return false, nil
	}
	// Free the slot during the backoff; asynq keeps the timer.
	if err := w.release(m, t.ID, 0); err != nil {
		w.log.Error("release model slot", "task_id", t.ID, "model_id", m.ID, "err", err)
	}
	return true, &retryError{Delay: delay, Err: perr}
}

// failureOf classifies a provider error into the failure to record, with
// the retry delay the provider asked for.
func (w *Worker) failureOf(a *attempt, perr error) (providers.ErrorKind, scheduler.Failure, time.Duration) {
	kind, pe := providers.Classify(perr)
	partial := ""
	var retryAfter time.Duration
	if pe != nil {
		partial, retryAfter = pe.Partial, pe.RetryAfter
	}
	f := scheduler.Failure{Kind: string(kind), Message: perr.Error(), Partial: partial}
	if partial != "" {
		// The provider produced (and bills) output before it failed; it
		// reported no usage, so the tokens are estimated.
		in, out := providers.EstimateTokens(a.running.Prompt), providers.EstimateTokens(partial)
		f.Usage = scheduler.Outcome{PromptTokens: in, CompletionTokens: out, Cost: scheduler.AttemptCost(a.m, in, out), Estimated: true}
	}
	return kind, f, retryAfter
}

// persist stores an attempt's outcome, retrying while the database is
// unavailable: the result is in hand and the slot lease is still renewed,
// so waiting out a short outage beats running the task again. It gives up
// when the handler's context ends (shutdown) or after persistWait; asynq
// then runs the task again and the next attempt takes it over.
func (w *Worker) persist(ctx context.Context, taskID int, store func() error) error {
	deadline := time.Now().Add(persistWait)
	delay := 100 * time.Millisecond
	for {
		err := store()
		if scheduler.CodeOf(err) != scheduler.CodeUnavailable || time.Now().After(deadline) {
			return err
		}
		w.log.Warn("store attempt outcome: database unavailable; retrying", "task_id", taskID, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// persistWait bounds how long persist waits for the database.
const persistWait = 2 * time.Minute

// call runs the provider on the attempt's request (built once for the
// delivery, see attemptRequest) with the attempt's timeout, streaming
// output chunks onto the bus.
func (w *Worker) call(ctx context.Context, t *ent.Task, m *ent.Model, ar attemptRequest, timeout time.Duration, streamed *bool) (providers.Result, error) {
	prov, err := w.provider(m)
	if err != nil {
		return providers.Result{}, providers.Permanent(fmt.Errorf("model %d config: %w", m.ID, err))
	}
	if ar.err != nil {
		return providers.Result{}, providers.Permanent(ar.err)
	}
	req := ar.req
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	st := newStreamer(w.bus, t.ID, t.Attempts, w.log)
	if req.OpenAI != nil {
		// A front-door task (server/openai.go) answers in the provider's
		// own chunks, and always learns how its attempt ended.
		st.frontDoor = true
		req.OnRawChunk = st.addRaw
	}
	res, err := providers.Run(cctx, prov, req, st.add)
	*streamed = st.close(context.WithoutCancel(ctx), res, err)
	if err != nil && cctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
		return res, &providers.Error{Kind: providers.KindTimeout, Partial: providers.PartialOf(err),
			Err: fmt.Errorf("attempt ran past its timeout of %s", timeout)}
	}
	return res, err
}
