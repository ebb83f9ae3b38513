package scheduler

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/internal/outbound"
)

// Service is the domain service. It is safe for concurrent use.
type Service struct {
	db      *ent.Client
	disp    Dispatcher
	bus     Publisher
	cfg     *config.Config
	log     *slog.Logger
	now     func() time.Time
	workers func(ctx context.Context) (int, error)
	dbPing  func(ctx context.Context) error
	// models, backlog and fresh keep the hot paths off the database: see
	// modelcache.go, backlog.go and fresh.go.
	models  *modelCache
	backlog *backlog
	fresh   *fresh
	keys    *keyCache
	// groups batch the hot paths' statements (batch.go).
	groups groups
	// onScheduled learns the run_at of every scheduled task this process
	// creates (the due scanner's timer, schedule.go).
	onScheduled atomic.Pointer[func(time.Time)]
	// counts caches the counts over the whole tasks table (counts.go).
	counts counts
	// hookPolicy checks callback URLs; onWebhook learns of deliveries this
	// process wrote (webhooks.go).
	hookPolicy atomic.Pointer[outbound.Policy]
	onWebhook  atomic.Pointer[func()]
	// bg owns the goroutines the service starts itself (background.go).
	bg *background
}

// Options are the dependencies of a Service.
type Options struct {
	DB         *ent.Client
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
	s := &Service{
		db: o.DB, disp: o.Dispatcher, bus: o.Bus, cfg: o.Config, log: log,
		now: time.Now, workers: o.Workers, dbPing: o.DBPing,
		backlog: newBacklog(), fresh: newFresh(), keys: newKeyCache(), bg: newBackground(),
	}
	s.models = newModelCache(s.bg)
	s.initGroups()
	return s
}

// Close stops the goroutines the service started itself (cache refreshes
// and group-commit hand-offs; see background.go) and waits for them, or
// for ctx to end. The service still answers calls afterwards, doing that
// work in the caller or not at all; app closes it after everything that
// calls it has stopped.
func (s *Service) Close(ctx context.Context) error { return s.bg.close(ctx) }
