// Package app assembles a running scheduler from its configuration: the
// database, Redis (or the embedded pair), the domain service, the event bus,
// the dispatcher, and the roles this process plays (api, worker or both).
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/llmsched/llm-scheduler/ent/model"
	"github.com/llmsched/llm-scheduler/internal/broker"
	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/events"
	"github.com/llmsched/llm-scheduler/internal/metrics"
	"github.com/llmsched/llm-scheduler/internal/providers"
	"github.com/llmsched/llm-scheduler/internal/requestid"
	"github.com/llmsched/llm-scheduler/internal/scheduler"
	"github.com/llmsched/llm-scheduler/internal/secrets"
	"github.com/llmsched/llm-scheduler/internal/store"
	"github.com/llmsched/llm-scheduler/internal/webhooks"
	"github.com/llmsched/llm-scheduler/jobs"
)

// Role says what a process does.
type Role string

const (
	RoleAPI    Role = "api"
	RoleWorker Role = "worker"
	RoleAll    Role = "all"
)

// ParseRole checks a --role value.
func ParseRole(s string) (Role, error) {
	switch Role(s) {
	case RoleAPI, RoleWorker, RoleAll:
		return Role(s), nil
	}
	return "", fmt.Errorf("--role must be api, worker or all, got %q", s)
}

// HandlerFunc builds the HTTP handler of an api process (server.New); app
// takes it as a function so that server can depend on app's types.
type HandlerFunc func(a *App) (http.Handler, error)

// App is a running scheduler process.
type App struct {
	Config     *config.Config
	Role       Role
	Log        *slog.Logger
	Store      *store.Store
	Broker     *broker.Broker
	Bus        *events.Bus
	Dispatcher *jobs.Dispatcher
	Service    *scheduler.Service
	Worker     *jobs.Worker
	Reconciler *jobs.Reconciler
	// DueScanner admits scheduled tasks when they come due.
	DueScanner *jobs.DueScanner
	// Webhooks sends completion webhooks (worker and all roles).
	Webhooks *webhooks.Sender
	Hooks    jobs.Hooks
	// Metrics is this process's Prometheus registry; its worker hooks are
	// the default Hooks.
	Metrics *metrics.Metrics

	httpServer *http.Server
	listener   net.Listener
	// metricsServer serves /metrics alone (ServeMetrics).
	metricsServer *http.Server
	// onStopping runs when Shutdown begins (OnStopping).
	onStopping []func()
	// components are what Start started, in order (components.go).
	components []component
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	closers    []func() error
	// stopping is closed when shutdown begins (intake stops).
	stopping chan struct{}
}

// New connects to the database and Redis, migrates when allowed, and builds
// the service. It starts nothing; call Start.
func New(ctx context.Context, cfg *config.Config, role Role, log *slog.Logger) (*App, error) {
	log = requestid.Logger(log)
	a := &App{Config: cfg, Role: role, Log: log, stopping: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			// The start's own error is returned; a failed close beside it is
			// only worth a line in the log.
			if err := a.closeAll(); err != nil {
				log.Warn("closing after a failed start", "err", err)
			}
		}
	}()
	if err := secrets.Resolve(cfg, log); err != nil {
		return nil, err
	}
	pol, err := cfg.Outbound()
	if err != nil {
		return nil, err
	}
	providers.SetOutbound(pol)
	st, err := store.Open(ctx, cfg.Database)
	if err != nil {
		return nil, err
	}
	a.Store = st
	a.closers = append(a.closers, st.Close)
	if cfg.Database.Driver == "sqlite" || cfg.Database.AutoMigrate {
		if err := st.Migrate(ctx); err != nil {
			return nil, err
		}
	}
	br, err := broker.Open(ctx, cfg.Redis)
	if err != nil {
		return nil, err
	}
	if br.Embedded != nil && os.Getenv("GOGC") == "" {
		debug.SetGCPercent(embeddedGCPercent)
	}
	a.Broker = br
	a.closers = append(a.closers, br.Close)
	a.Bus = events.NewBus(br.Client, br.Prefix, log)
	a.Dispatcher = jobs.NewDispatcher(br, cfg.Queue.LeaseTTL.D(), jobs.OrderOf(cfg.Queue), log)
	a.closers = append(a.closers, a.Dispatcher.Close)
	a.Service = scheduler.New(scheduler.Options{
		DB: st.Client, MultiDB: st.Multi, DBPing: st.Ping, Dispatcher: a.Dispatcher, Bus: a.Bus,
		Config: cfg, Logger: log, Workers: a.Dispatcher.WorkerCount,
	})
	a.Reconciler = jobs.NewReconciler(st.Client, a.Service.Lifecycle, a.Dispatcher, br.Prefix,
		cfg.Queue.ReconcileInterval.D(), cfg.Queue.LeaseTTL.D(), cfg.Queue.LeaderLeaseTTL.D(), log)
	a.DueScanner = jobs.NewDueScanner(a.Service.Tasks, cfg.Queue.ScheduleCheckInterval.D(), log)
	// Database gauges come from api processes only, so that a cluster
	// reports them once per api process rather than once per worker.
	mo := metrics.Options{Log: log, RedisCommands: br.Commands}
	if role != RoleWorker {
		mo.DB = st.Client
	}
	a.Metrics = metrics.New(mo)
	a.Hooks = a.Metrics.WorkerHooks()
	a.Bus.OnPublish(a.Metrics.ObserveTaskEvent)
	if cfg.Embedded() {
		if err := a.seedDemo(ctx); err != nil {
			return nil, err
		}
	}
	ok = true
	return a, nil
}

// embeddedGCPercent is the garbage collector's target (GOGC) in a process
// that runs the embedded Redis, unless GOGC is set. miniredis builds a new
// Lua interpreter for every script call, about 100 KB of garbage, and the
// scheduler makes thousands of script calls a second under load; at the
// default of 100 the collector took 15% of the embedded bench run's CPU.
// Measured (three runs each): embedded end to end 956-1,022 -> 1,143-1,287
// tasks/s, for a heap target of three times the live heap instead of two.
const embeddedGCPercent = 200

// DemoModelName is the simulator model the embedded default seeds.
const DemoModelName = "demo-simulator"

// seedDemo registers one online simulator model, once.
func (a *App) seedDemo(ctx context.Context) error {
	n, err := a.Store.Client.Model.Query().Where(model.Name(DemoModelName)).Count(ctx)
	if err != nil {
		return fmt.Errorf("look for the demo model: %w", err)
	}
	if n > 0 {
		return nil
	}
	workers := 2
	_, err = a.Service.CreateModel(ctx, scheduler.NewModel{
		Name: DemoModelName, Type: string(domain.ModelSimulator), MaxWorkers: &workers,
		Description: "Built-in simulator (no real LLM): streams a made-up answer so a first task completes end to end.",
		Config:      map[string]any{"latency_ms": 200, "tokens_per_second": 40, "output_tokens": 24},
	})
	if err != nil {
		return fmt.Errorf("seed the demo model: %w", err)
	}
	a.Log.Info("seeded demo model", "name", DemoModelName, "type", "simulator")
	return nil
}

// Start starts the bus, the reconciler, the worker (role worker or all)
// and the HTTP server (role api or all) on addr ("" for the configured one).
func (a *App) Start(ctx context.Context, handler HandlerFunc, addr string) error {
	ctx, a.cancel = context.WithCancel(context.WithoutCancel(ctx))
	if err := a.Bus.Start(ctx); err != nil {
		return err
	}
	// The bus outlives everything that publishes; Bus.Stop logs what it
	// could not send (Redis down is no error of the shutdown).
	a.started("event bus", busDrain, a.Bus.Stop)
	// The service's own goroutines stop once nothing calls it.
	a.started("service", serviceDrain, a.Service.Close)
	if err := a.Reconciler.Start(ctx); err != nil {
		return fmt.Errorf("start the reconciler: %w", err)
	}
	a.started("reconciler", loopStop, a.Reconciler.Stop)
	if err := a.DueScanner.Start(ctx); err != nil {
		return fmt.Errorf("start the due scanner: %w", err)
	}
	a.started("due scanner", loopStop, a.DueScanner.Stop)
	select {
	case <-a.Bus.Ready():
	case <-time.After(10 * time.Second):
		return errors.New("event bus did not subscribe to redis within 10s")
	}
	if a.Role == RoleWorker || a.Role == RoleAll {
		a.Worker = jobs.NewWorker(a.Broker, a.Service, a.Dispatcher, a.Bus, a.Config, a.Log, a.Hooks)
		if err := a.Worker.Start(); err != nil {
			return err
		}
		ws, err := webhooks.New(a.Store.Client, a.Config, a.Log)
		if err != nil {
			return err
		}
		a.Webhooks = ws
		a.Service.OnWebhook(ws.Wake)
		// The sender waits for the deliveries in flight, each bounded by
		// webhooks.timeout.
		if err := ws.Start(ctx); err != nil {
			return fmt.Errorf("start the webhook sender: %w", err)
		}
		a.started("webhook sender", a.Config.Webhooks.Timeout.D()+loopStop, ws.Stop)
	}
	if a.Role == RoleAPI || a.Role == RoleAll {
		h, err := handler(a)
		if err != nil {
			return err
		}
		if addr == "" {
			addr = a.Config.Addr()
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", addr, err)
		}
		a.listener = ln
		// Models may not reach this server, on the address it really
		// listens on (port 0 picks one).
		pol, err := a.Config.Outbound(ln.Addr().String())
		if err != nil {
			ln.Close()
			return err
		}
		providers.SetOutbound(pol)
		// ReadTimeout bounds a request and its body: net/http clears the
		// deadline once the body is read (and gorilla on upgrade), so
		// streamed answers and websockets outlive it. No WriteTimeout: it
		// would cut them.
		sc := a.Config.Server
		a.httpServer = &http.Server{Handler: h, ReadHeaderTimeout: sc.ReadHeaderTimeout.D(),
			ReadTimeout: sc.ReadTimeout.D(), IdleTimeout: sc.IdleTimeout.D()}
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			if err := a.httpServer.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.Log.Error("http server stopped", "err", err)
			}
		}()
	}
	return nil
}

// Addr is the address the HTTP server listens on.
func (a *App) Addr() string {
	if a.listener == nil {
		return ""
	}
	return a.listener.Addr().String()
}

// Stopping is closed when shutdown begins.
func (a *App) Stopping() <-chan struct{} { return a.stopping }

// OnStopping registers f to run when Shutdown begins, before the drain
// window, in the order registered: the HTTP handler closes its websockets
// and asynqmon's Redis client there. Register during Start (the handler
// is built there).
func (a *App) OnStopping(f func()) { a.onStopping = append(a.onStopping, f) }

// Go runs f on a goroutine that Shutdown waits for, after the HTTP server
// has stopped. f must return once Stopping is closed.
func (a *App) Go(f func()) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		f()
	}()
}

// ServeMetrics also serves /metrics, alone and without authentication, on
// addr: for worker processes, which have no HTTP server of their own. Bind
// it to a private network. Shutdown stops it.
func (a *App) ServeMetrics(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.Metrics.Handler())
	a.metricsServer = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	a.Log.Info("serving metrics", "addr", ln.Addr().String())
	a.Go(func() {
		if err := a.metricsServer.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.Log.Error("metrics listener stopped", "err", err)
		}
	})
	return nil
}

// Shutdown stops intake, lets running tasks finish within
// server.shutdown_grace, hands the rest back to the queue, keeps the HTTP
// listener open until server.drain_window has passed since it began (health
// and writes answer 503 meanwhile), then stops accepting, lets requests in
// flight finish (at most 10 s) and closes connections.
func (a *App) Shutdown(ctx context.Context) error {
	began := time.Now()
	select {
	case <-a.stopping:
	default:
		close(a.stopping)
		for _, f := range a.onStopping {
			f()
		}
	}
	var errs []error
	if a.Worker != nil {
		a.Worker.Shutdown()
	}
	if a.httpServer != nil {
		// The drain window: health and writes answer 503 (intake) while
		// the listener still accepts, so that load balancers take this
		// process out before its connections are refused.
		if drain := a.Config.Server.DrainWindow.D() - time.Since(began); drain > 0 {
			a.Log.Info("draining: health and new work answer 503 until the listener closes", "window", drain.String())
			t := time.NewTimer(drain)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := a.httpServer.Shutdown(sctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
		}
		cancel()
	}
	if a.metricsServer != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = a.metricsServer.Shutdown(sctx) // best effort at exit
		cancel()
	}
	if a.cancel != nil {
		a.cancel()
	}
	a.wg.Wait()
	errs = append(errs, a.stopComponents(ctx), a.closeAll())
	return errors.Join(errs...)
}

// How long Shutdown waits for each component to stop.
const (
	// loopStop: the reconciler cancels its round and releases its lease
	// (jobs.releaseWait), the due scanner ends its round.
	loopStop = 10 * time.Second
	// serviceDrain: a group-commit batch holds its statements' timeout
	// (scheduler's flushTimeout) at most.
	serviceDrain = 30 * time.Second
	// busDrain: queued events reach Redis before it is closed.
	busDrain = 2 * time.Second
)

func (a *App) closeAll() error {
	var errs []error
	for i := len(a.closers) - 1; i >= 0; i-- {
		if err := a.closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	a.closers = nil
	return errors.Join(errs...)
}
