package jobs

import (
	"context"
	"errors"
	"time"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/internal/providers"
)

// errRateLimited is why a task waits for its model's rate limit.
var errRateLimited = errors.New("model rate limit (rpm/tpm) reached; the task waits without an attempt")

// rateCost is a task's limits on model m and the estimated token cost of
// its request.
func rateCost(t *ent.Task, m *ent.Model, ar attemptRequest) (providers.Limits, int) {
	l, err := providers.LimitsOf(m.Config)
	if err != nil || !l.Limited() {
		// An invalid config fails in the provider with a clear message.
		return providers.Limits{}, 0
	}
	if ar.err != nil {
		return l, providers.EstimateTokens(t.Prompt)
	}
	return l, providers.EstimateRequestTokens(ar.req, l.MaxTokens)
}

// maxInlineRateWait is the longest a task waits for its rate limit while
// holding its slot. asynq's timers have one-second resolution, too coarse
// for pacing (rpm 60 is one start a second), so short waits happen in the
// handler; the lease outlives them without a heartbeat.
func (w *Worker) maxInlineRateWait() time.Duration {
	return min(w.cfg.Queue.LeaseTTL.D()/3, 5*time.Second)
}

// admitRate takes the task's share of its model's rate limits. It reports
// whether the task may run now. Over the limit, the model's dispatch backs
// off until the buckets have room (Explain says rate_limited) and the task
// waits without an attempt: a short wait in place, holding its slot, after
// which it pumps the model so parked tasks take the slots freed meanwhile;
// a long one parked again at its place, with the returned error bringing
// this message back then (burning no retry).
func (w *Worker) admitRate(ctx context.Context, t *ent.Task, m *ent.Model, ar attemptRequest) (bool, error) {
	l, cost := rateCost(t, m, ar)
	if !l.Limited() {
		return true, nil
	}
	for {
		wait, err := w.disp.slots.ReserveRate(ctx, m.ID, l, cost, time.Now())
		if err != nil {
			if rerr := w.release(m, t.ID, t.Priority); rerr != nil {
				w.log.Warn("give back model slot", "task_id", t.ID, "model_id", m.ID, "err", rerr)
			}
			return false, err
		}
		if wait == 0 {
			return true, nil
		}
		if err := w.disp.slots.Backoff(ctx, m.ID, time.Now().Add(wait)); err != nil {
			w.log.Warn("back model off for its rate limit", "model_id", m.ID, "err", err)
		}
		if wait > w.maxInlineRateWait() {
			if err := w.release(m, t.ID, t.Priority); err != nil {
				return false, err
			}
			return false, &retryError{Delay: wait, Err: errRateLimited}
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			if err := w.release(m, t.ID, t.Priority); err != nil {
				w.log.Warn("give back model slot", "task_id", t.ID, "model_id", m.ID, "err", err)
			}
			return false, ctx.Err()
		case <-timer.C:
		}
		// The backoff is over: hand slots freed meanwhile to parked tasks.
		if err := w.disp.Pump(ctx, m); err != nil {
			w.log.Warn("pump model after its rate-limit wait", "model_id", m.ID, "err", err)
		}
	}
}

// settleRate corrects the token bucket by the difference between the
// estimate and the usage the provider reported.
func (w *Worker) settleRate(ctx context.Context, t *ent.Task, m *ent.Model, ar attemptRequest, u providers.Usage) {
	l, cost := rateCost(t, m, ar)
	if l.TPM == 0 {
		return
	}
	delta := u.PromptTokens + u.CompletionTokens - cost
	if err := w.disp.slots.SettleRate(ctx, m.ID, l, delta, time.Now()); err != nil {
		w.log.Warn("settle token usage", "task_id", t.ID, "model_id", m.ID, "err", err)
	}
}
