package bench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // --pprof
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/internal/store"
)

// Options are the bench's flags.
type Options struct {
	// Tasks is the number of tasks of each end-to-end run (and the baseline).
	Tasks int
	// Submitters is the number of concurrent submitting clients.
	Submitters int
	// Subscribers is the number of taskUpdated websocket subscribers.
	Subscribers int
	// Batches is the number of createTasks calls of 1,000 inputs.
	Batches int
	// IdleSamples is the number of single tasks per idle-pickup run.
	IdleSamples int
	// IdleWindow is how long idle Redis load is measured.
	IdleWindow time.Duration
	// IdleCPUWindow is how long idle processes' CPU is measured.
	IdleCPUWindow time.Duration
	// ModerateWindow is how long tasks are offered open loop at half the
	// end-to-end rate.
	ModerateWindow time.Duration
	// Reps is how many times the baseline and the scheduler are measured,
	// alternately; every target is judged on the median over the reps.
	Reps int
	// Quick shrinks everything to finish in under a minute.
	Quick bool
	// LimitsWindow is how long each of the machine-limit measurements of a
	// rep runs (limits.go), and LimitsPings how many Redis round trips it
	// times.
	LimitsWindow time.Duration
	LimitsPings  int
	// ConfigPath is --config, passed on to the scheduler child.
	ConfigPath string
	// DBName is the MySQL database the bench owns (dropped and recreated).
	DBName string
	// RedisDB is the Redis database number to claim; -1 picks an empty one.
	RedisDB int
	// InProcess runs the scheduler inside the bench process even on MySQL
	// (for --cpuprofile; peak RSS then includes the bench itself).
	InProcess bool
	// CPUProfile writes a CPU profile of the scheduler phases (in-process).
	CPUProfile string
	// MemProfile writes a heap profile at the end (in-process).
	MemProfile string
	// PprofAddr serves net/http/pprof during the run.
	PprofAddr string
	// SkipEmbedded skips the embedded-default comparison run.
	SkipEmbedded bool
	// FrontDoorOnly runs only the OpenAI front-door phase (frontdoor.go),
	// FrontDoorReps times FrontDoorSamples paired samples.
	FrontDoorOnly    bool
	FrontDoorSamples int
	FrontDoorReps    int
	// FairShareOnly runs only the fair-share phase (fairshare.go): up to
	// FairShareReps pairs of runs of Tasks tasks (default 300 there), one
	// caller against FairShareCallers callers, on models with
	// FairShareSlots slots, until FairShareTime is used.
	FairShareOnly    bool
	FairShareReps    int
	FairShareCallers int
	FairShareSlots   int
	FairShareTime    time.Duration
	// FairSharePrivate runs the fair-share phase on a private MariaDB and
	// Redis with an api and a worker process (their servers' counters
	// are then the scheduler's alone).
	FairSharePrivate bool
	// Backlog, when set, runs only the large-backlog measurements
	// (backlog.go) with this many pending tasks, on MySQL + Redis.
	Backlog int
	// BacklogModels is how many models the backlog is spread over.
	BacklogModels int
	// Scale walks the scaling curve (scale.go): 1, 2 and 4 worker
	// processes with 1 and 2 api processes. Workers and APIs, when set
	// instead, measure that one shape.
	Scale         bool
	Workers, APIs int
	// ScaleTasks is the number of tasks measured per shape.
	ScaleTasks int
	// ScaleRedis is the Redis the scaling mode starts: single, cluster or
	// both.
	ScaleRedis string
	// ScaleModels is how many models the scaling mode's tasks go to.
	ScaleModels int
}

// Defaults fills unset options for a full or a quick run.
func (o *Options) Defaults() {
	if o.Quick {
		o.Tasks = or(o.Tasks, 1000)
		o.Subscribers = or(o.Subscribers, 200)
		o.Batches = or(o.Batches, 3)
		o.IdleSamples = or(o.IdleSamples, 50)
		o.IdleWindow = orD(o.IdleWindow, 2*time.Second)
		o.FrontDoorSamples = or(o.FrontDoorSamples, 100)
		o.IdleCPUWindow = orD(o.IdleCPUWindow, 3*time.Second)
		o.ModerateWindow = orD(o.ModerateWindow, 2*time.Second)
		o.Reps = or(o.Reps, 1)
		o.LimitsWindow = orD(o.LimitsWindow, 200*time.Millisecond)
		o.LimitsPings = or(o.LimitsPings, 200)
	}
	o.LimitsWindow = orD(o.LimitsWindow, time.Second)
	o.LimitsPings = or(o.LimitsPings, 1000)
	o.IdleCPUWindow = orD(o.IdleCPUWindow, 30*time.Second)
	o.ModerateWindow = orD(o.ModerateWindow, 10*time.Second)
	o.Reps = or(o.Reps, 3)
	o.FrontDoorSamples = or(o.FrontDoorSamples, 300)
	o.FrontDoorReps = or(o.FrontDoorReps, 3)
	if o.FairShareOnly {
		// Many short pairs: the median of their ratios is what settles
		// the target on a machine whose load drifts.
		o.Tasks = or(o.Tasks, 300)
	}
	o.FairShareReps = or(o.FairShareReps, 40)
	o.FairShareCallers = or(o.FairShareCallers, 8)
	o.FairShareSlots = or(o.FairShareSlots, 4)
	o.FairShareTime = orD(o.FairShareTime, 150*time.Second)
	o.Tasks = or(o.Tasks, 10000)
	o.Submitters = or(o.Submitters, 16)
	o.Subscribers = or(o.Subscribers, 1000)
	o.Batches = or(o.Batches, 20)
	o.IdleSamples = or(o.IdleSamples, 200)
	o.IdleWindow = orD(o.IdleWindow, 5*time.Second)
	o.BacklogModels = or(o.BacklogModels, 100)
	if o.Quick {
		o.ScaleTasks = or(o.ScaleTasks, 300)
	}
	o.ScaleTasks = or(o.ScaleTasks, 3000)
	o.ScaleModels = or(o.ScaleModels, 8)
	if o.ScaleRedis == "" {
		o.ScaleRedis = "both"
	}
	if o.DBName == "" {
		o.DBName = "llmsched_bench"
	}
}

func or(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

func orD(v, def time.Duration) time.Duration {
	if v > 0 {
		return v
	}
	return def
}

// external reports whether cfg names MySQL and a plain Redis server.
func external(cfg *config.Config) bool {
	return cfg.Database.Driver == "mysql" && !cfg.Redis.Embedded &&
		cfg.Redis.SentinelMaster == "" && len(cfg.Redis.ClusterAddrs) == 0
}

// report collects the table and the target lines.
type report struct {
	rows    [][3]string
	targets []targetLine
}

type targetLine struct {
	name, figure string
	pass         bool
	na           bool
}

func (r *report) row(phase, metric, value string) {
	r.rows = append(r.rows, [3]string{phase, metric, value})
}

func (r *report) target(name, figure string, pass bool) {
	r.targets = append(r.targets, targetLine{name: name, figure: figure, pass: pass})
}

func (r *report) skip(name, why string) {
	r.targets = append(r.targets, targetLine{name: name, figure: why, na: true})
}

func (r *report) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PHASE\tMETRIC\tVALUE")
	for _, row := range r.rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", row[0], row[1], row[2])
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	for _, t := range r.targets {
		verdict := "FAIL"
		switch {
		case t.na:
			verdict = "N/A"
		case t.pass:
			verdict = "PASS"
		}
		fmt.Fprintf(w, "TARGET %-38s %-60s %s\n", t.name, t.figure, verdict)
	}
}

// Run runs the bench against cfg and prints the table and targets to out.
func Run(ctx context.Context, cfg *config.Config, o Options, out, logw io.Writer) error {
	o.Defaults()
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	progress := func(format string, args ...any) {
		fmt.Fprintf(logw, "bench: "+format+"\n", args...)
	}
	if o.Scale || o.Workers > 0 || o.APIs > 0 {
		started := time.Now()
		if err := runScale(ctx, o, out, progress); err != nil {
			return err
		}
		fmt.Fprintf(out, "wall time %s\n", time.Since(started).Round(time.Second))
		return nil
	}
	c := *cfg
	cfg = &c
	// Bench-sized queue: the batch phase holds far more than the default
	// backlog of 10,000 pending tasks at once.
	cfg.Queue.MaxQueueSize = max(cfg.Queue.MaxQueueSize, 1_000_000)
	cfg.Auth.Enabled = new(bool)
	cfg.Log.Level = "warn"
	// No load balancer waits on the bench's schedulers: stop at once.
	cfg.Server.DrainWindow = 0
	rep := &report{}
	started := time.Now()
	if o.PprofAddr != "" {
		ln, err := net.Listen("tcp", o.PprofAddr)
		if err != nil {
			return fmt.Errorf("--pprof: %w", err)
		}
		defer ln.Close()
		go func() { _ = http.Serve(ln, nil) }()
		progress("pprof on http://%s/debug/pprof/", ln.Addr())
	}

	ext := external(cfg)
	tmp, err := os.MkdirTemp("", "llmsched-bench-")
	if err != nil {
		return err
	}
	defer removeTemp(tmp, progress)
	if o.FrontDoorOnly {
		if err := frontDoorOnly(ctx, cfg, o, rep, log, progress, tmp); err != nil {
			return err
		}
		finish(rep, out, started)
		return nil
	}

	if o.FairShareOnly {
		if err := fairShareOnly(ctx, cfg, o, rep, log, progress, tmp); err != nil {
			return err
		}
		finish(rep, out, started)
		return nil
	}

	if o.Backlog > 0 {
		if !ext {
			return fmt.Errorf("--backlog needs MySQL and a Redis server (DB_HOST/REDIS_HOST or --config)")
		}
		if err := runBacklog(ctx, cfg, o, rep, progress); err != nil {
			return err
		}
		finish(rep, out, started)
		return nil
	}
	figs, err := runReps(ctx, cfg, o, rep, log, progress, tmp)
	if err != nil {
		return err
	}
	verdicts(rep, figs, !o.Quick)
	finish(rep, out, started)
	return nil
}

// finish adds the run's wall time to rep and prints it.
func finish(rep *report, out io.Writer, started time.Time) {
	rep.row("run", "wall time", time.Since(started).Round(time.Second).String())
	fmt.Fprintln(out)
	rep.print(out)
}

// claimExternal claims an empty Redis database and recreates the bench's
// MySQL database, pointing cfg at both; release gives the Redis database
// back.
func claimExternal(ctx context.Context, cfg *config.Config, o Options, progress func(string, ...any)) (claim *redis.Client, release func(), err error) {
	addr := fmt.Sprintf("%s:%d", cfg.Redis.Host, cfg.Redis.Port)
	db, claim, err := claimRedisDB(ctx, addr, cfg.Redis.Password, cfg.Redis.PoolSize, o.RedisDB)
	if err != nil {
		return nil, nil, err
	}
	release = func() {
		if err := releaseRedisDB(claim); err != nil {
			progress("release redis db %d: %v", db, err)
		}
	}
	cfg.Redis.DB = db
	cfg.Redis.KeyPrefix = "llmsched-bench"
	cfg.Database.Database = o.DBName
	progress("claimed redis db %d; recreating database %q", db, o.DBName)
	if err := recreateDatabase(ctx, cfg.Database); err != nil {
		release()
		return nil, nil, err
	}
	return claim, release, nil
}

// startSUT starts the scheduler under test: a child process on MySQL +
// Redis (in-process with --inprocess or --cpuprofile).
func startSUT(ctx context.Context, cfg *config.Config, o Options, claim redis.UniversalClient, log *slog.Logger) (*sut, error) {
	if o.InProcess || o.CPUProfile != "" {
		return startInProcess(ctx, cfg, log)
	}
	return startChild(ctx, cfg, o.ConfigPath, claim, os.Stderr)
}

// frontDoorOnly runs only the front-door phase (bench --frontdoor-only),
// on MySQL + Redis when configured, else on the embedded default.
func frontDoorOnly(ctx context.Context, cfg *config.Config, o Options, rep *report, log *slog.Logger, progress func(string, ...any), tmp string) error {
	s, stop, err := startOnePhase(ctx, cfg, o, log, progress, filepath.Join(tmp, "frontdoor.db"))
	if err != nil {
		return err
	}
	defer stop()
	return runFrontDoor(ctx, s, o, rep, progress)
}

// startOnePhase starts the scheduler for a run of one phase: on MySQL +
// Redis when configured (a claimed Redis database, a recreated MySQL one),
// else in process on the embedded default with its SQLite file at dbFile.
// stop stops it and gives back what was claimed.
func startOnePhase(ctx context.Context, cfg *config.Config, o Options, log *slog.Logger, progress func(string, ...any), dbFile string) (s *sut, stop func(), err error) {
	if !external(cfg) {
		progress("embedded default (SQLite + in-process Redis)")
		cfg.Database.SQLitePath = dbFile
		if s, err = startInProcess(ctx, cfg, log); err != nil {
			return nil, nil, err
		}
		return s, s.stop, nil
	}
	claim, release, err := claimExternal(ctx, cfg, o, progress)
	if err != nil {
		return nil, nil, err
	}
	if s, err = startSUT(ctx, cfg, o, claim, log); err != nil {
		release()
		return nil, nil, err
	}
	return s, func() { s.stop(); release() }, nil
}

func openSQLite(path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate")
	if err != nil {
		return nil, err
	}
	// The scheduler's store uses one connection on SQLite; so does the baseline.
	db.SetMaxOpenConns(1)
	return db, nil
}

// recreateDatabase drops and creates the bench's own MySQL database, then
// migrates the scheduler's schema into it.
func recreateDatabase(ctx context.Context, dbc config.Database) error {
	if !strings.Contains(dbc.Database, "bench") {
		return fmt.Errorf("refusing to drop database %q: the bench only recreates databases whose name contains \"bench\"", dbc.Database)
	}
	admin, err := sql.Open("mysql", store.MySQLDSN(dbc, ""))
	if err != nil {
		return err
	}
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+dbc.Database+"`"); err != nil {
		return fmt.Errorf("drop bench database %s: %w", dbc.Database, err)
	}
	st, err := store.Open(ctx, dbc)
	if err != nil {
		return err
	}
	defer st.Close()
	return st.Migrate(ctx)
}

// profile starts a CPU profile when asked; the returned func stops it and
// reports whether the profile was written whole.
func profile(path string) (func() error, error) {
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		return nil, errors.Join(err, f.Close())
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("cpu profile %s: %w", path, err)
		}
		return nil
	}, nil
}

// removeTemp removes a scratch directory; one left behind is only reported.
func removeTemp(dir string, progress func(string, ...any)) {
	if err := os.RemoveAll(dir); err != nil {
		progress("could not remove %s: %v", dir, err)
	}
}
