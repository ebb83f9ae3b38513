package scheduler

import (
	"context"
	"database/sql"
	"log/slog"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/internal/config"
)

// Service is the domain service: the four parts below, assembled over one
// database, dispatcher and event bus, plus the state machine they share
// (machine.go). It is safe for concurrent use. Callers that need one part
// alone take that part (jobs' reconciler takes the Lifecycle, the due
// scanner the Tasks); the API adapters, and jobs' worker, which reads
// tasks and models besides driving attempts, take the whole Service, whose
// methods are the parts' methods.
type Service struct {
	*Tasks
	*Lifecycle
	*ModelAdmin
	*Stats

	m *machine
	// bg owns the goroutines the service starts itself (background.go).
	bg *background
}

// Options are the dependencies of a Service.
type Options struct {
	DB *ent.Client
	// MultiDB, on MySQL, is a pool whose connections accept several
	// statements per packet (store.Store.Multi): the hot transactions
	// then take one round trip each (trip.go). Nil: plain transactions.
	MultiDB    *sql.DB
	DBPing     func(ctx context.Context) error
	Dispatcher Dispatcher
	Bus        Publisher
	Config     *config.Config
	Logger     *slog.Logger
	// Workers counts live worker processes (asynq servers), for health.
	Workers func(ctx context.Context) (int, error)
}

// New builds the service.
func New(o Options) *Service {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	bg := newBackground()
	m := newMachine(o.DB, o.Bus, log, o.Config.Webhooks.MaxAge.D(), bg)
	if o.MultiDB != nil {
		m.multi = &multiPool{db: o.MultiDB, log: log}
	}
	models := newModelCache(bg)
	counts := newTaskCounts(o.DB, bg, log)
	usage := usageReader{db: o.DB, now: m.now}
	output, _ := o.Bus.(OutputReader)
	return &Service{
		Tasks: newTasks(tasksDeps{m: m, bg: bg, disp: o.Dispatcher, cfg: o.Config, models: models,
			backlog: newBacklog(o.DB, bg, log), counts: counts, usage: usage, output: output}),
		Lifecycle: newLifecycle(m, bg),
		ModelAdmin: &ModelAdmin{db: o.DB, disp: o.Dispatcher, cfg: o.Config, log: log, now: m.now,
			models: models, counts: counts},
		Stats: &Stats{db: o.DB, disp: o.Dispatcher, cfg: o.Config, now: m.now, dbPing: o.DBPing,
			workers: o.Workers, counts: counts, usage: usage},
		m: m, bg: bg,
	}
}

// Close stops the goroutines the service started itself (cache refreshes
// and group-commit hand-offs; see background.go) and waits for them, or
// for ctx to end. The service still answers calls afterwards, doing that
// work in the caller or not at all; app closes it after everything that
// calls it has stopped.
func (s *Service) Close(ctx context.Context) error { return s.bg.close(ctx) }

// OnWebhook registers a function told, after commit, that this process
// wrote a webhook delivery (the local dispatcher wakes up at once).
func (s *Service) OnWebhook(f func()) { s.m.onWebhook.Store(&f) }
