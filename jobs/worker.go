package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/internal/broker"
	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/internal/events"
	"github.com/llmsched/llm-scheduler/internal/providers"
	"github.com/llmsched/llm-scheduler/internal/rediskeys"
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

// Service is what a worker needs of the domain service: the attempt
// lifecycle (scheduler.Lifecycle), the task and model reads around it
// (scheduler.Tasks) and the model list its wake keys follow on Redis
// Cluster (scheduler.ModelAdmin). *scheduler.Service has them all.
type Service interface {
	PickupTask(ctx context.Context, id int) (*ent.Task, error)
	GetTask(ctx context.Context, id int) (*ent.Task, error)
	ModelOf(ctx context.Context, t *ent.Task) (*ent.Model, error)
	Route(ctx context.Context, t *ent.Task, m *ent.Model) (scheduler.Route, error)
	StartAttempt(ctx context.Context, t *ent.Task, modelID int, worker string) (*ent.Task, *ent.Attempt, error)
	CompleteAttempt(ctx context.Context, t *ent.Task, a *ent.Attempt, o scheduler.Outcome) error
	FailAttempt(ctx context.Context, t *ent.Task, a *ent.Attempt, f scheduler.Failure) error
	InterruptAttempt(ctx context.Context, t *ent.Task, a *ent.Attempt, why string) error
	CancelledAttempt(ctx context.Context, a *ent.Attempt, partial string)
	FailUnrunnable(ctx context.Context, t *ent.Task, why string) error
	ListModels(ctx context.Context) ([]*ent.Model, error)
}

var _ Service = (*scheduler.Service)(nil)

// Worker runs tasks: it is an asynq server whose handler leases a model
// slot, runs the provider, stores the outcome and hands the slot on.
type Worker struct {
	svc    Service
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

	// inflight counts running handlers and queued slot releases, so
	// Shutdown can wait for the ones asynq abandons at the end of the
	// grace period.
	inflight sync.WaitGroup
	releases *releaser
	beats    *heartbeats
}

type cachedProvider struct {
	version time.Time
	p       providers.Provider
}

// NewWorker builds a worker on the broker and starts its slot releaser
// and heartbeats.
// Call Start, then Shutdown (also when Start was not called).
func NewWorker(b *broker.Broker, svc Service, disp *Dispatcher, bus *events.Bus, cfg *config.Config, log *slog.Logger, hooks Hooks) *Worker {
	host, _ := os.Hostname()
	w := &Worker{
		svc: svc, disp: disp, bus: bus, cfg: cfg, log: log, hooks: hooks,
		name:      fmt.Sprintf("%s:%d", host, os.Getpid()),
		retry:     RetryPolicy{Base: cfg.Queue.RetryDelay.D(), Max: cfg.Queue.MaxRetryDelay.D()},
		providers: map[int]cachedProvider{},
	}
	w.releases = newReleaser(disp, log, &w.inflight)
	w.releases.start()
	w.beats = newHeartbeats(disp.slots, cfg.Queue.LeaseTTL.D(), log)
	w.beats.start()
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
			w.asynqRDB, w.wakeCh = c, rediskeys.WakeChannel(b.Prefix)
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
	w.beats.stop()
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

// asynqLogger routes asynq's logs to slog.
type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Fatal(args ...any) {
	a.l.Error(fmt.Sprint(args...), "component", "asynq", "fatal", true)
}
