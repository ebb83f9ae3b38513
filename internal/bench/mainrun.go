package bench

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/llmsched/llm-scheduler/internal/broker"
	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/internal/store"
)

// runReps is the full run: o.Reps reps, each a baseline then the scheduler
// (on MySQL + Redis, plus the embedded default's end-to-end run to compare
// with, or on the embedded default alone), each on a fresh database.
func runReps(ctx context.Context, cfg *config.Config, o Options, rep *report, log *slog.Logger, progress func(string, ...any), tmp string) ([]figures, error) {
	ext := external(cfg)
	if ext {
		progress("MySQL %s:%d database %q, Redis %s:%d; %d rep(s)", cfg.Database.Host, cfg.Database.Port, o.DBName, cfg.Redis.Host, cfg.Redis.Port, o.Reps)
	} else {
		progress("embedded default (SQLite + in-process Redis), %d rep(s); figures for MySQL + Redis need DB_HOST/REDIS_HOST or --config", o.Reps)
	}
	var figs []figures
	for i := range o.Reps {
		label := ""
		if o.Reps > 1 {
			label = fmt.Sprintf("[rep %d/%d] ", i+1, o.Reps)
		}
		var f figures
		var err error
		if ext {
			f, err = runExternal(ctx, cfg, o, rep, log, progress, label)
		} else {
			f, err = runEmbedded(ctx, cfg, o, rep, log, progress, tmp, label)
		}
		if err != nil {
			return nil, err
		}
		if ext && !o.SkipEmbedded {
			if f.embedded, err = embeddedE2E(ctx, cfg, o, rep, log, progress, tmp, label); err != nil {
				return nil, err
			}
		}
		figs = append(figs, f)
	}
	return figs, nil
}

// baselineRows reports a baseline run.
func baselineRows(rep *report, label string, base e2eResult) {
	name := label + "baseline (raw asynq + 1 INSERT + 2 UPDATEs)"
	rep.row(name, "completed tasks/s", fmt.Sprintf("%.0f", base.rate()))
	rep.row(name, "submit->completed", base.latency.summary())
}

// runExternal runs one rep on MySQL + Redis: the baseline, then every
// phase against a scheduler child on a freshly created database.
func runExternal(ctx context.Context, cfg *config.Config, o Options, rep *report, log *slog.Logger, progress func(string, ...any), label string) (figures, error) {
	addr := fmt.Sprintf("%s:%d", cfg.Redis.Host, cfg.Redis.Port)
	claim, release, err := claimExternal(ctx, cfg, o, progress)
	if err != nil {
		return figures{}, err
	}
	defer release()
	db := cfg.Redis.DB
	sqlDB, err := sql.Open("mysql", store.MySQLDSN(cfg.Database, cfg.Database.Database))
	if err != nil {
		return figures{}, err
	}
	defer sqlDB.Close()
	sqlDB.SetMaxOpenConns(cfg.Database.MaxOpenConns)
	sqlDB.SetMaxIdleConns(cfg.Database.MaxOpenConns)

	progress("%smachine limits: Redis round trip, MySQL single-row INSERT and UPDATE", label)
	lim, err := measureLimits(ctx, sqlDB, "mysql", claim, o.LimitsPings, o.Submitters, o.LimitsWindow)
	if err != nil {
		return figures{}, err
	}
	lim.rows(rep, label+"machine limits (nothing of ours)", "MySQL")

	progress("%sbaseline: raw asynq, %d tasks, %d submitters", label, o.Tasks, o.Submitters)
	bl := &baseline{db: sqlDB, rdb: claim, dialect: "mysql", concurrency: cfg.Worker.MaxWorkers, poll: cfg.Queue.PollInterval.D()}
	// The baseline's handlers run in the bench process, beside its clients.
	meter := newCostMeter(ctx, sqlDB, claim, metered{"bench", os.Getpid()})
	before, err := meter.snap(ctx)
	if err != nil {
		return figures{}, err
	}
	base, err := bl.run(ctx, o.Tasks, o.Submitters)
	var baseCost taskCost
	if err == nil {
		baseCost, err = meter.since(ctx, before, base.n)
	}
	bl.cleanup()
	if err != nil {
		return figures{}, err
	}
	baselineRows(rep, label, base)

	s, err := startSUT(ctx, cfg, o, claim, log)
	if err != nil {
		return figures{}, err
	}
	defer s.stop()
	if s.child != nil {
		meter = meter.with("scheduler", s.pid)
	}
	ph := &phases{s: s, o: o, rep: rep, progress: progress, cfg: cfg, label: label,
		idle: func(ctx context.Context, window time.Duration) (idleLoad, error) {
			return measureIdleRedis(ctx, claim, addr, cfg.Redis.Password, db, window)
		},
		meter: meter, baseCost: baseCost}
	return ph.run(ctx, base.rate(), s.child != nil)
}

// runEmbedded runs one rep on the embedded default: the baseline on
// miniredis + SQLite, then every phase against an in-process scheduler.
func runEmbedded(ctx context.Context, cfg *config.Config, o Options, rep *report, log *slog.Logger, progress func(string, ...any), tmp, label string) (figures, error) {
	dir, err := os.MkdirTemp(tmp, "embedded-")
	if err != nil {
		return figures{}, err
	}
	progress("%sbaseline: raw asynq on miniredis + SQLite, %d tasks, %d submitters", label, o.Tasks, o.Submitters)
	base, err := embeddedBaseline(ctx, cfg, o, dir, func(l limits) { l.rows(rep, label+"embedded machine limits (nothing of ours)", "SQLite") })
	if err != nil {
		return figures{}, err
	}
	baselineRows(rep, label, base)
	c := *cfg
	c.Database.SQLitePath = filepath.Join(dir, "scheduler.db")
	s, err := startInProcess(ctx, &c, log)
	if err != nil {
		return figures{}, err
	}
	defer s.stop()
	ph := &phases{s: s, o: o, rep: rep, progress: progress, cfg: &c, label: label + "embedded ",
		idle: embeddedIdleLoad(s)}
	return ph.run(ctx, base.rate(), false)
}

// embeddedBaseline runs the baseline on a fresh miniredis and SQLite file,
// after measuring the limits of the two (handed to limitsOf).
func embeddedBaseline(ctx context.Context, cfg *config.Config, o Options, dir string, limitsOf func(limits)) (e2eResult, error) {
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		return e2eResult{}, err
	}
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), Protocol: broker.Protocol})
	defer rdb.Close()
	sqlDB, err := openSQLite(filepath.Join(dir, "baseline.db"))
	if err != nil {
		return e2eResult{}, err
	}
	defer sqlDB.Close()
	lim, err := measureLimits(ctx, sqlDB, "sqlite", rdb, o.LimitsPings, o.Submitters, o.LimitsWindow)
	if err != nil {
		return e2eResult{}, err
	}
	limitsOf(lim)
	bl := &baseline{db: sqlDB, rdb: rdb, dialect: "sqlite", concurrency: cfg.Worker.MaxWorkers, poll: cfg.Queue.PollInterval.D()}
	return bl.run(ctx, o.Tasks, o.Submitters)
}

// embeddedIdleLoad counts the in-process Redis's commands over a window.
func embeddedIdleLoad(s *sut) func(ctx context.Context, window time.Duration) (idleLoad, error) {
	return func(ctx context.Context, window time.Duration) (idleLoad, error) {
		before := s.embedded.CommandCount()
		select {
		case <-ctx.Done():
			return idleLoad{}, ctx.Err()
		case <-time.After(window):
		}
		n := float64(s.embedded.CommandCount()-before) / window.Seconds()
		return idleLoad{server: n, own: n}, nil
	}
}

// embeddedE2E is the embedded default's end-to-end REST run of one rep of
// a MySQL + Redis run, to compare the two.
func embeddedE2E(ctx context.Context, cfg *config.Config, o Options, rep *report, log *slog.Logger, progress func(string, ...any), tmp, label string) (float64, error) {
	progress("%sembedded default comparison run", label)
	ecfg := config.Defaults(true)
	ecfg.App.Env = "development"
	ecfg.Queue.MaxQueueSize = cfg.Queue.MaxQueueSize
	ecfg.Queue.PollInterval = cfg.Queue.PollInterval
	ecfg.Auth.Enabled = new(bool)
	ecfg.Log.Level = "warn"
	ecfg.Server.DrainWindow = 0
	dir, err := os.MkdirTemp(tmp, "embedded-")
	if err != nil {
		return 0, err
	}
	ecfg.Database.SQLitePath = filepath.Join(dir, "scheduler.db")
	s, err := startInProcess(ctx, &ecfg, log)
	if err != nil {
		return 0, err
	}
	defer s.stop()
	ph := &phases{s: s, o: o, rep: rep, progress: progress, cfg: &ecfg, label: label + "embedded ",
		idle: embeddedIdleLoad(s)}
	return ph.e2eOnly(ctx)
}
