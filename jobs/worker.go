package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/internal/broker"
	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/events"
	"github.com/llmsched/llm-scheduler/internal/providers"
	"github.com/llmsched/llm-scheduler/internal/scheduler"
	"github.com/llmsched/llm-scheduler/internal/secrets"
)

// Hooks observe the worker (metrics). Every field may be nil.
type Hooks struct {
	// Picked is called when an attempt starts, with the time since the
	// task was created or became due.
	Picked func(modelID int, wait time.Duration)
	// Finished is called when an attempt ends.
	Finished func(modelID int, outcome string, kind string, run time.Duration, u providers.Usage)
}

// Worker runs tasks: it is an asynq server whose handler leases a model
// slot, runs the provider, stores the outcome and hands the slot on.
type Worker struct {
	svc    *scheduler.Service
	disp   *Dispatcher
	bus    *events.Bus
	cfg    *config.Config
	log    *slog.Logger
	server *asynq.Server
	name   string
	retry  RetryPolicy
	hooks  Hooks

	provMu    sync.Mutex
	providers map[int]cachedProvider

	// With wake-ups on (wake.go), asynq runs on a client of its own whose
	// dequeue calls gate answers while the worker is idle.
	gate     *idleGate
	asynqRDB redis.UniversalClient
	wakeCh   string
	stopWake context.CancelFunc
	wakeDone chan struct{}
	// On Redis Cluster, the models whose wake keys armWake sets.
	wakeMu       sync.Mutex
	wakeModels   []int
	wakeModelsAt time.Time

	// Without the gate (checkGate), asynq runs on plainRDB and polls
	// every pollInterval.
	plainRDB     redis.UniversalClient
	pollInterval time.Duration
	serverCfg    asynq.Config

	// inflight counts running handlers, their heartbeats and queued slot
	// releases, so Shutdown can wait for the ones asynq abandons at the
	// end of the grace period.
	inflight sync.WaitGroup
	releases *releaser
}

type cachedProvider struct {
	version time.Time
	p       providers.Provider
}

// NewWorker builds a worker on the broker and starts its slot releaser.
// Call Start, then Shutdown (also when Start was not called).
func NewWorker(b *broker.Broker, svc *scheduler.Service, disp *Dispatcher, bus *events.Bus, cfg *config.Config, log *slog.Logger, hooks Hooks) *Worker {
	host, _ := os.Hostname()
	w := &Worker{
		svc: svc, disp: disp, bus: bus, cfg: cfg, log: log, hooks: hooks,
		name:      fmt.Sprintf("%s:%d", host, os.Getpid()),
		retry:     RetryPolicy{Base: cfg.Queue.RetryDelay.D(), Max: cfg.Queue.MaxRetryDelay.D()},
		providers: map[int]cachedProvider{},
	}
	w.releases = newReleaser(disp, log, &w.inflight)
	w.releases.start()
	queues := map[string]int{QueueHigh: 3, QueueMedium: 2, QueueLow: 1}
	strict := cfg.Queue.Strategy != "weighted"
	if !strict {
		for q := range queues {
			queues[q] = cfg.Queue.Weights[q]
		}
	}
	delayed := min(max(cfg.Queue.RetryDelay.D()/4, 50*time.Millisecond), time.Second)
	rdb, poll := b.Client, cfg.Queue.PollInterval.D()
	w.plainRDB, w.pollInterval = rdb, poll
	if check := cfg.Queue.IdleCheckInterval.D(); check > 0 && b.Opt != nil {
		if c, ok := b.Opt.MakeRedisClient().(redis.UniversalClient); ok {
			arm := setWakeKey(b.Client, b.Prefix)
			w.gate = newIdleGate(arm, check, cfg.Queue.PollInterval.D(), log)
			if disp.slots.wakePerModel {
				w.gate.arm = w.armWake
				// A wake-up may come from a model created since the list
				// was read (Dispatcher.enqueue): read it again.
				w.gate.onWake = func() {
					w.wakeMu.Lock()
					w.wakeModelsAt = time.Time{}
					w.wakeMu.Unlock()
				}
			}
			c.AddHook(w.gate)
			touch := w.gate.touch
			disp.enqueued.Store(&touch)
			w.asynqRDB, w.wakeCh = c, wakeChannel(b.Prefix)
			rdb, poll = c, gatedPoll
		}
	}
	w.serverCfg = asynq.Config{
		Concurrency:              cfg.Worker.MaxWorkers,
		Queues:                   queues,
		StrictPriority:           strict,
		TaskCheckInterval:        poll,
		DelayedTaskCheckInterval: delayed,
		RetryDelayFunc:           retryDelayFunc,
		IsFailure:                func(err error) bool { return !errors.As(err, new(*retryError)) },
		ShutdownTimeout:          cfg.Server.ShutdownGrace.D(),
		Logger:                   asynqLogger{log},
		LogLevel:                 asynq.WarnLevel,
	}
	w.server = asynq.NewServerFromRedisClient(rdb, w.serverCfg)
	return w
}

// wakeModelsTTL is how long armWake reuses its list of models (until the
// next wake-up). A model created since has no wake key set, but its first
// grant in each process wakes the workers anyway (Dispatcher.enqueue),
// which then read the list again.
const wakeModelsTTL = time.Second

// armWake sets the wake key of every model (Redis Cluster: one per hash
// slot of a model, see Slots.wakePerModel), in one pipeline that the
// cluster client splits by master.
func (w *Worker) armWake(ctx context.Context) error {
	w.wakeMu.Lock()
	if time.Since(w.wakeModelsAt) >= wakeModelsTTL {
		ms, err := w.svc.ListModels(ctx)
		if err != nil {
			w.wakeMu.Unlock()
			return fmt.Errorf("list models to wake: %w", err)
		}
		w.wakeModels = w.wakeModels[:0]
		for _, m := range ms {
			w.wakeModels = append(w.wakeModels, m.ID)
		}
		w.wakeModelsAt = time.Now()
	}
	ids := slices.Clone(w.wakeModels)
	w.wakeMu.Unlock()
	if len(ids) == 0 {
		return nil
	}
	pipe := w.disp.rdb.Pipeline()
	for _, id := range ids {
		pipe.Set(ctx, w.disp.slots.wakeKeyOf(id), "1", 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("set the wake keys of %d models: %w", len(ids), err)
	}
	return nil
}

// Name identifies this worker process in attempt records.
func (w *Worker) Name() string { return w.name }

// Start starts processing.
func (w *Worker) Start() error {
	mux := asynq.NewServeMux()
	mux.HandleFunc(TypeRunTask, w.ProcessTask)
	if w.gate != nil {
		w.checkGate() // may turn the gate off
	}
	if w.gate != nil {
		ctx, cancel := context.WithCancel(context.Background())
		w.stopWake, w.wakeDone = cancel, make(chan struct{})
		go func() {
			defer close(w.wakeDone)
			w.gate.listen(ctx, w.disp.rdb, w.wakeCh)
		}()
	}
	if err := w.server.Start(mux); err != nil {
		w.stopWakeUps()
		return fmt.Errorf("start worker: %w", err)
	}
	w.awaitRegistration()
	return nil
}

// registerWait bounds how long Start waits for the worker to show in
// Redis.
const registerWait = 5 * time.Second

// awaitRegistration waits until asynq has written this process's server
// record (its heartbeater does so in the background right after Start),
// so that a process reported started is counted by the health check: a
// health read in between said "degraded: no worker process is running".
// If the record is late, start goes on and the health check catches up.
func (w *Worker) awaitRegistration() {
	host, _ := os.Hostname()
	pid := os.Getpid()
	deadline := time.Now().Add(registerWait)
	for {
		servers, err := w.disp.inspector.Servers()
		if err == nil {
			for _, s := range servers {
				if s.Host == host && s.PID == pid {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			w.log.Warn("worker started but its record is not in Redis yet; health reports it once it is", "waited", registerWait, "err", err)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stopWakeUps ends the wake-up listener and closes asynq's client, once.
func (w *Worker) stopWakeUps() {
	if w.gate == nil || w.asynqRDB == nil {
		return
	}
	if w.stopWake != nil {
		w.stopWake()
		<-w.wakeDone
		w.stopWake = nil
	}
	if err := w.asynqRDB.Close(); err != nil {
		w.log.Warn("close the worker's asynq redis client", "err", err)
	}
	w.asynqRDB = nil
}

// Stop stops taking new tasks; running ones continue.
func (w *Worker) Stop() { w.server.Stop() }

// Shutdown waits up to server.shutdown_grace for running tasks, then
// interrupts the rest and hands them back to the queue.
func (w *Worker) Shutdown() {
	if w.gate != nil {
		w.gate.stop() // asynq's shutdown waits for a held dequeue call
	}
	w.server.Shutdown()
	// At the end of the grace period asynq requeues the messages of
	// handlers still running, cancels their contexts and returns without
	// waiting for them. Wait until they have recorded the interrupted
	// attempt and freed their slots: the caller closes the database and
	// Redis next.
	done := make(chan struct{})
	go func() { w.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(handlerDrain):
		w.log.Warn("handlers did not return after their contexts were cancelled", "waited", handlerDrain)
	}
	w.releases.stop()
	w.stopWakeUps()
}

// handlerDrain bounds how long Shutdown waits for cancelled handlers.
const handlerDrain = 15 * time.Second

func (w *Worker) provider(m *ent.Model) (providers.Provider, error) {
	w.provMu.Lock()
	defer w.provMu.Unlock()
	if c, ok := w.providers[m.ID]; ok && c.version.Equal(m.UpdatedAt) {
		return c.p, nil
	}
	conf, err := secrets.OpenModelConfig(w.cfg, m.Config)
	if err != nil {
		return nil, err
	}
	p, err := providers.New(m.Type, conf)
	if err != nil {
		return nil, err
	}
	w.providers[m.ID] = cachedProvider{version: m.UpdatedAt, p: p}
	return p, nil
}

// ProcessTask is the asynq handler.
func (w *Worker) ProcessTask(ctx context.Context, at *asynq.Task) error {
	w.inflight.Add(1)
	defer w.inflight.Done()
	var p payload
	if err := json.Unmarshal(at.Payload(), &p); err != nil || p.TaskID == 0 {
		return fmt.Errorf("bad payload %q: %w", at.Payload(), asynq.SkipRetry)
	}
	t, err := w.svc.PickupTask(ctx, p.TaskID)
	if scheduler.CodeOf(err) == scheduler.CodeNotFound {
		return nil
	}
	if err != nil {
		return err
	}
	m, err := w.svc.ModelOf(ctx, t)
	if err != nil {
		return err
	}
	// Fallbacks (scheduler.Route): once its retries on its own model are
	// spent, the task runs on the model's fallbacks; m is where it runs now.
	rt, err := w.svc.Route(ctx, t, m)
	if err != nil {
		return err
	}
	if own := m; rt.Next(t).ID != own.ID {
		m = rt.Next(t)
		if err := w.release(own, t.ID, 0); err != nil { // a slot it may hold there
			return err
		}
	}
	if t.Status.Terminal() {
		// Cancelled or finished while queued: free whatever it holds.
		return w.release(m, t.ID, 0)
	}
	if m.DeletedAt != nil {
		if err := w.release(m, t.ID, 0); err != nil {
			return err
		}
		if err := w.svc.FailUnrunnable(ctx, t, fmt.Sprintf("model %d was deleted", m.ID)); err != nil && scheduler.CodeOf(err) != scheduler.CodeConflict {
			return err
		}
		return nil
	}
	if t.Status == domain.StatusPending && t.NextAttemptAt != nil && time.Until(*t.NextAttemptAt) > 50*time.Millisecond {
		// Re-admitted early (reconciler, after a Redis flush): give back any
		// slot it was granted and keep the backoff.
		if err := w.release(m, t.ID, 0); err != nil {
			return err
		}
		return &retryError{Delay: time.Until(*t.NextAttemptAt), Err: errors.New("retry backoff not over")}
	}
	if t.Status == domain.StatusRunning {
		// A second delivery of a running task (a re-admission after a
		// Redis flush, or a stale message of a lost worker). While its
		// lease lives, its worker is alive (or only just lost): come back
		// after a lease period instead of running it twice. Once the lease
		// has expired, Admit below takes the task over.
		st, err := w.disp.slots.StateOf(ctx, rt.Current(t).ID, t.ID)
		if err != nil {
			return err
		}
		if st.Leased {
			return &retryError{Delay: w.cfg.Queue.LeaseTTL.D() + time.Second, Err: errors.New("task is running on another worker")}
		}
	}
	// Take a slot, or wait parked in the model's queue. A message picked
	// up soon after its grant already holds one.
	if !w.freshGrant(ctx, p, t, m) {
		if mine, err := w.takeSlot(ctx, t, m); !mine {
			return err // parked (nil): a released slot brings it back
		}
	}
	// Rate limits (ratelimit.go): over the model's rpm/tpm the task waits
	// parked, without an attempt.
	if ok, err := w.admitRate(ctx, t, m); !ok {
		return err
	}
	return w.run(ctx, t, m, rt)
}

// takeSlot asks Redis for the task's slot: it reports whether the task
// holds one; if not, the task waits parked. Slots the call handed to other
// parked tasks are enqueued.
func (w *Worker) takeSlot(ctx context.Context, t *ent.Task, m *ent.Model) (bool, error) {
	held, granted, err := w.disp.slots.Admit(ctx, m.ID, capacity(m), []admitItem{itemOf(t)})
	if err != nil {
		return false, err
	}
	mine := len(held) == 1
	var others []grant
	for _, g := range granted {
		if g.TaskID == t.ID {
			mine = true
		} else {
			others = append(others, g)
		}
	}
	if err := w.disp.enqueue(ctx, m.ID, others); err != nil {
		w.log.Warn("hand slots on", "model_id", m.ID, "err", err)
	}
	return mine, nil
}

// freshGrant reports whether a pending task's message still holds the
// slot lease it was sent with, so that the pickup needs no Admit (a Redis
// round trip per task) to confirm it. A lease given less than a third of
// its TTL ago cannot have expired: run's heartbeat renews it a third of
// the TTL after the attempt starts.
//
// The lease may have been given back since, though, by an earlier
// delivery of this same message, which asynq redelivers with the same
// payload. So the grant is trusted only if nothing since shows: the
// message never failed (a failed StartAttempt frees the slot), no attempt
// started after the grant (one interrupted at shutdown frees the slot and
// requeues the message), the task was due when granted (a re-admission
// during a retry backoff is given back), the model is not rate limited
// (admitRate gives the slot back and brings the message back, without
// any trace in the database) and the model is unchanged (its limits may
// just have been removed).
func (w *Worker) freshGrant(ctx context.Context, p payload, t *ent.Task, m *ent.Model) bool {
	if p.GrantedAt == 0 || t.Status != domain.StatusPending || m.ID != p.ModelID {
		return false
	}
	// GrantedAt is rounded down to the millisecond: a time in the same
	// millisecond may be after the grant.
	granted := time.UnixMilli(p.GrantedAt)
	window := w.disp.slots.ttl / 3
	if age := time.Since(granted); age >= window || age <= -window {
		return false // stale, or a clock too far off to tell
	}
	if n, _ := asynq.GetRetryCount(ctx); n > 0 {
		return false
	}
	if t.StartedAt != nil && !t.StartedAt.Before(granted) {
		return false
	}
	if t.NextAttemptAt != nil && t.NextAttemptAt.After(granted) {
		return false
	}
	if l, err := providers.LimitsOf(m.Config); err != nil || l.Limited() {
		return false
	}
	return m.UpdatedAt.Before(granted)
}

// release frees a task's slot and hands free slots to waiting tasks.
// repark > 0 parks the task again at that priority.
func (w *Worker) release(m *ent.Model, id, repark int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	granted, err := w.disp.slots.Release(ctx, m.ID, capacity(m), id, repark)
	if err != nil {
		return err
	}
	return w.disp.enqueue(ctx, m.ID, granted)
}

func (w *Worker) run(ctx context.Context, t *ent.Task, m *ent.Model, rt scheduler.Route) (retErr error) {
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
				released = true
			}
			return nil
		}
		return err
	}
	if w.hooks.Picked != nil {
		w.hooks.Picked(m.ID, time.Since(due))
	}
	timeout := w.cfg.Queue.TaskTimeout.D()
	if t.TimeoutSeconds != nil {
		timeout = time.Duration(*t.TimeoutSeconds) * time.Second
	}
	hbCtx, stopHB := context.WithCancel(ctx)
	defer stopHB()
	// The heartbeat ends with the handler (stopHB); Shutdown waits for it
	// with the handlers (inflight).
	w.inflight.Add(1)
	go func() {
		defer w.inflight.Done()
		w.heartbeat(hbCtx, m.ID, t.ID)
	}()

	started := time.Now()
	var streamed bool
	defer func() {
		if streamed {
			// The outcome is stored (or the task went back to its queue):
			// the chunks kept for late readers may go (internal/events/output.go).
			w.bus.ForgetOutput(t.ID, running.Attempts)
		}
	}()
	res, perr := w.call(ctx, running, m, timeout, &streamed)
	elapsed := time.Since(started)
	bg := context.WithoutCancel(ctx)

	finish := func(outcome, kind string) {
		if w.hooks.Finished != nil {
			w.hooks.Finished(m.ID, outcome, kind, elapsed, res.Usage)
		}
	}
	if perr == nil {
		w.settleRate(bg, t, m, res.Usage)
		err := w.persist(ctx, t.ID, func() error {
			return w.svc.CompleteAttempt(bg, running, att, scheduler.Outcome{
				Output: res.Output, Embedding: res.Embedding,
				PromptTokens: res.Usage.PromptTokens, CompletionTokens: res.Usage.CompletionTokens,
				Cost: scheduler.AttemptCost(m, res.Usage.PromptTokens, res.Usage.CompletionTokens), Estimated: res.TokenSource == providers.TokensEstimated,
				TokenSource: res.TokenSource, FinishReason: res.FinishReason,
			})
		})
		finish("completed", "")
		if err != nil && scheduler.CodeOf(err) != scheduler.CodeConflict {
			return err
		}
		return nil
	}
	kind, pe := providers.Classify(perr)
	partial := ""
	var retryAfter time.Duration
	if pe != nil {
		partial, retryAfter = pe.Partial, pe.RetryAfter
	}
	if ctx.Err() != nil {
		// asynq cancelled us: a user cancel, or this worker is shutting down.
		cur, gerr := w.svc.GetTask(bg, t.ID)
		if gerr == nil && cur.Status == domain.StatusCancelled {
			w.svc.CancelledAttempt(bg, att, partial)
			finish("cancelled", "cancelled")
			return nil
		}
		if err := w.svc.InterruptAttempt(bg, running, att, "worker stopped during the attempt; the task returns to its queue"); err != nil {
			w.log.Warn("hand interrupted task back", "task_id", t.ID, "err", err)
		}
		finish("interrupted", "interrupted")
		return ctx.Err()
	}
	f := scheduler.Failure{Kind: string(kind), Message: perr.Error(), Partial: partial}
	if partial != "" {
		// The provider produced (and bills) output before it failed; it
		// reported no usage, so the tokens are estimated.
		in, out := providers.EstimateTokens(running.Prompt), providers.EstimateTokens(partial)
		f.Usage = scheduler.Outcome{PromptTokens: in, CompletionTokens: out, Cost: scheduler.AttemptCost(m, in, out), Estimated: true}
	}
	used := scheduler.AttemptsUsed(running)
	final := kind == providers.KindPermanent || !rt.More(used) // retries left here or on a fallback
	var delay time.Duration
	if !final {
		delay = w.retry.routeDelay(rt, used, retryAfter)
		f.RetryAt = time.Now().Add(delay)
	}
	if kind == providers.KindRateLimited {
		// A 429 backs the whole model off: for as long as the provider
		// asked, else for the retry policy's delay (either capped at
		// queue.max_retry_delay).
		wait := w.retry.Delay(rt.OnModel(used), retryAfter)
		if err := w.disp.slots.Backoff(bg, m.ID, time.Now().Add(wait)); err != nil {
			w.log.Warn("back model off", "model_id", m.ID, "err", err)
		}
	}
	finish("failed", string(kind))
	// One line per failed attempt says what went wrong and what happens
	// next; provider messages are already scrubbed of the model's secrets.
	logArgs := []any{"task_id", t.ID, "model_id", m.ID, "attempt", running.Attempts, "error_kind", string(kind), "error", perr.Error()}
	if final {
		w.log.Warn("attempt failed; the task fails", logArgs...)
	} else {
		w.log.Warn("attempt failed; retrying", append(logArgs, "retry_in", delay.Round(time.Millisecond).String())...)
	}
	if err := w.persist(ctx, t.ID, func() error { return w.svc.FailAttempt(bg, running, att, f) }); err != nil {
		if scheduler.CodeOf(err) == scheduler.CodeConflict {
			return nil
		}
		return err
	}
	if final {
		return nil
	}
	// Free the slot during the backoff; asynq keeps the timer.
	released = true
	if err := w.release(m, t.ID, 0); err != nil {
		w.log.Error("release model slot", "task_id", t.ID, "model_id", m.ID, "err", err)
	}
	return &retryError{Delay: delay, Err: perr}
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

// call builds the request and runs the provider with the attempt's timeout,
// streaming output chunks onto the bus.
func (w *Worker) call(ctx context.Context, t *ent.Task, m *ent.Model, timeout time.Duration, streamed *bool) (providers.Result, error) {
	prov, err := w.provider(m)
	if err != nil {
		return providers.Result{}, providers.Permanent(fmt.Errorf("model %d config: %w", m.ID, err))
	}
	req, err := providers.BuildRequest(t.ID, t.Attempts, t.Type, t.Prompt, t.Params)
	if err != nil {
		return providers.Result{}, providers.Permanent(err)
	}
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
		partial := ""
		if _, pe := providers.Classify(err); pe != nil {
			partial = pe.Partial
		}
		return res, &providers.Error{Kind: providers.KindTimeout, Partial: partial,
			Err: fmt.Errorf("attempt ran past its timeout of %s", timeout)}
	}
	return res, err
}

func (w *Worker) heartbeat(ctx context.Context, modelID, taskID int) {
	every := w.cfg.Queue.LeaseTTL.D() / 3
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			ok, err := w.disp.slots.Heartbeat(ctx, modelID, taskID)
			if err != nil && ctx.Err() == nil {
				w.log.Warn("renew model slot lease", "task_id", taskID, "err", err)
			} else if !ok && ctx.Err() == nil {
				w.log.Warn("model slot lease had expired and was renewed", "task_id", taskID, "model_id", modelID)
			}
		}
	}
}

// streamer coalesces output chunks into bus messages at most every 50ms,
// so a fast provider does not flood Redis while a slow one streams live.
type streamer struct {
	bus     *events.Bus
	taskID  int
	attempt int
	log     *slog.Logger

	// frontDoor: the chunks carry the provider's own (raw), and the last
	// one says how the attempt ended (close).
	frontDoor bool

	mu    sync.Mutex
	buf   []byte
	raw   []json.RawMessage
	seq   int
	last  time.Time
	timer *time.Timer
}

const streamFlushEvery = 50 * time.Millisecond

func newStreamer(bus *events.Bus, taskID, attempt int, log *slog.Logger) *streamer {
	return &streamer{bus: bus, taskID: taskID, attempt: attempt, log: log}
}

func (s *streamer) add(chunk string) error { return s.addRaw(nil, chunk) }

// addRaw adds a chunk as the provider sent it (nil: none) with its text.
func (s *streamer) addRaw(raw []byte, chunk string) error {
	if s.bus == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = append(s.buf, chunk...)
	if raw != nil {
		s.raw = append(s.raw, json.RawMessage(bytes.Clone(raw)))
	}
	if time.Since(s.last) >= streamFlushEvery {
		s.flushLocked(context.Background(), false)
	} else if s.timer == nil {
		s.timer = time.AfterFunc(streamFlushEvery, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.timer = nil
			if len(s.buf) > 0 || len(s.raw) > 0 {
				s.flushLocked(context.Background(), false)
			}
		})
	}
	return nil
}

func (s *streamer) flushLocked(ctx context.Context, done bool) {
	s.publishLocked(ctx, events.OutputChunk{Done: done})
}

func (s *streamer) publishLocked(ctx context.Context, c events.OutputChunk) {
	s.seq++
	c.TaskID, c.Attempt, c.Seq, c.Text, c.Raw = s.taskID, s.attempt, s.seq, string(s.buf), s.raw
	s.buf, s.raw = s.buf[:0], nil
	s.last = time.Now()
	if err := s.bus.PublishOutput(ctx, c); err != nil {
		s.log.Debug("publish output chunk", "task_id", s.taskID, "err", err)
	}
}

// close sends what is left, marked Done. A front-door task's last chunk
// is always sent: it carries the provider's whole answer when it was not
// streamed, or the status of the provider error that ended the attempt.
//
// It reports whether the attempt published any chunk.
func (s *streamer) close(ctx context.Context, res providers.Result, err error) bool {
	if s.bus == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	switch {
	case s.frontDoor:
		last := events.OutputChunk{Done: true, Answer: res.Raw}
		if _, pe := providers.Classify(err); err != nil && pe != nil {
			last.Status, last.Answer = pe.Status, nil
		}
		s.publishLocked(ctx, last)
	case len(s.buf) > 0 || s.seq > 0:
		s.flushLocked(ctx, true)
	}
	return s.seq > 0
}

// asynqLogger routes asynq's logs to slog.
type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Fatal(args ...any) {
	a.l.Error(fmt.Sprint(args...), "component", "asynq", "fatal", true)
}
