package cli

import (
	"context"
	"flag"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/llmsched/llm-scheduler/internal/bench"
)

// benchCommand is `llm-scheduler bench`: see internal/bench/doc.go and docs/performance.md.
func benchCommand(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var o bench.Options
	fs.IntVar(&o.Tasks, "tasks", 0, "tasks per end-to-end run and in the baseline (default 10000, quick 1000; 300 per run with --fairshare-only)")
	fs.IntVar(&o.Submitters, "submitters", 0, "concurrent submitting clients (default 16)")
	fs.IntVar(&o.Subscribers, "subscribers", 0, "taskUpdated websocket subscribers in the fan-out phase (default 1000, quick 200)")
	fs.IntVar(&o.Batches, "batches", 0, "createTasks calls of 1,000 inputs in the batch phase (default 20, quick 3)")
	fs.IntVar(&o.IdleSamples, "idle-samples", 0, "single tasks per idle-pickup run (default 200, quick 50)")
	fs.DurationVar(&o.IdleWindow, "idle-window", 0, "how long idle Redis load is measured (default 5s, quick 2s)")
	fs.BoolVar(&o.Quick, "quick", false, "small sizes, one rep: a smoke run that judges no target")
	fs.IntVar(&o.Reps, "reps", 0, "reps of baseline and scheduler, alternated; each target is judged on the median over the reps (default 3, quick 1)")
	fs.DurationVar(&o.IdleCPUWindow, "idle-cpu-window", 0, "how long idle processes' CPU is measured from /proc (default 30s, quick 3s)")
	fs.DurationVar(&o.ModerateWindow, "moderate-window", 0, "how long tasks are offered open loop at half the end-to-end rate (default 10s, quick 2s)")
	fs.StringVar(&o.DBName, "db-name", "llmsched_bench", "MySQL database the bench owns: dropped and recreated (name must contain \"bench\")")
	fs.IntVar(&o.RedisDB, "redis-db", -1, "Redis database number to use; it must be empty (default: the first empty one from 14 down)")
	fs.BoolVar(&o.InProcess, "inprocess", false, "run the scheduler inside the bench process instead of a child (for profiling)")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the scheduler phases to this file (implies --inprocess)")
	fs.StringVar(&o.PprofAddr, "pprof", "", "serve net/http/pprof on this address during the run (with --inprocess it profiles the scheduler)")
	fs.IntVar(&o.Backlog, "backlog", 0, "run only the large-backlog measurements with this many pending tasks (MySQL + Redis; e.g. 1000000)")
	fs.IntVar(&o.BacklogModels, "backlog-models", 0, "models the backlog is spread over (default 100)")
	fs.BoolVar(&o.SkipEmbedded, "skip-embedded", false, "skip the embedded-default comparison run")
	fs.BoolVar(&o.FrontDoorOnly, "frontdoor-only", false, "only measure the latency the OpenAI front door (/v1) adds over calling the upstream directly")
	fs.IntVar(&o.FrontDoorSamples, "frontdoor-samples", 0, "paired samples per front-door rep (default 300, quick 100)")
	fs.IntVar(&o.FrontDoorReps, "frontdoor-reps", 0, "front-door reps; the report gives their median (default 3)")
	fs.BoolVar(&o.FairShareOnly, "fairshare-only", false, "only measure what fair share between callers costs: end-to-end runs with one caller against runs with many (docs/fairness.md)")
	fs.IntVar(&o.FairShareReps, "fairshare-reps", 0, "at most this many fair-share pairs of runs (1 caller, many callers); the verdict is on the median ratio (default 40)")
	fs.BoolVar(&o.FairSharePrivate, "fairshare-private", false, "run the fair-share phase on a private MariaDB and Redis (mariadbd, redis-server) with an api and a worker process, and report their statements, commands and CPU per task too")
	fs.DurationVar(&o.FairShareTime, "fairshare-time", 0, "stop starting fair-share pairs after this long (at least 3 pairs run; default 2m30s)")
	fs.IntVar(&o.FairShareCallers, "fairshare-callers", 0, "callers the tasks are spread over in the fair-share runs (default 8)")
	fs.IntVar(&o.FairShareSlots, "fairshare-slots", 0, "max_workers of the fair-share model, small so that tasks queue (default 4)")
	fs.BoolVar(&o.Scale, "scale", false, "walk the scaling curve: 1, 2, 4 worker processes x 1, 2 api processes, each a separate process, on a MariaDB and a Redis the bench starts (docs/scaling.md)")
	fs.IntVar(&o.Workers, "workers", 0, "scaling mode, one shape: this many worker processes (with --apis)")
	fs.IntVar(&o.APIs, "apis", 0, "scaling mode, one shape: this many api processes (with --workers)")
	fs.IntVar(&o.ScaleTasks, "scale-tasks", 0, "scaling mode: tasks measured per shape (default 3000, quick 300)")
	fs.StringVar(&o.ScaleRedis, "scale-redis", "", "scaling mode: the Redis to start: single, cluster or both (default both)")
	fs.IntVar(&o.ScaleModels, "scale-models", 0, "scaling mode: models the tasks are spread over (default 8)")
	cfg, err := loadConfig(fs, args)
	if err != nil {
		return err
	}
	o.ConfigPath = fs.Lookup("config").Value.String()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return bench.Run(ctx, cfg, o, stdout, stderr)
}
