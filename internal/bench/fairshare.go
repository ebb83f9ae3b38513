package bench

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llmsched/llm-scheduler/internal/config"
)

// The fair-share phase (bench --fairshare-only) measures what fair share
// between callers costs (the target, docs/performance.md: at most 10% of
// end-to-end throughput against the same run with one caller).
//
// Each run submits --tasks tasks over REST to a fresh zero-latency
// simulator model with few slots (--fairshare-slots, default 4), so that
// submissions outrun it and tasks wait in the model's parked queue, where
// the slot scripts give every task a fair-share tag. A pair is two runs:
// every task from one caller, and the tasks spread round robin over
// --fairshare-callers caller labels; the order inside a pair alternates, so
// that drift on a shared machine, and growth of the tables, hit both
// sides alike. A fresh model per run keeps one run's parked queue and
// per-caller state out of the next. The first pair warms up and is
// discarded. Pairs run until --fairshare-reps pairs or the time budget
// (--fairshare-time) is used, whichever comes first.
//
// For each pair the bench takes three ratios, many callers over one
// caller: throughput (submit of the first task to completion of the last),
// scheduler CPU per task (utime+stime from /proc, less sensitive to the
// machine's load than wall time) and Redis commands per task (the
// scheduler's llmsched_redis_commands_total). The verdict is on the median
// throughput ratio; the CPU and command ratios say whether fair share does
// more work, whatever the wall clock says.

// fairShareRun is one run's figures.
type fairShareRun struct {
	rate     float64       // tasks per second, first submit to last completion
	p50      time.Duration // submit -> completed
	cpu      float64       // scheduler CPU seconds per task
	commands float64       // scheduler Redis commands per task
	// servers are the private servers' counters per task (--fairshare-private).
	servers map[string]float64
}

// fairShareMinPairs is how many measured pairs run even past the budget.
const fairShareMinPairs = 3

// fairShareTarget is the scheduler the phase drives and how to read its
// costs.
type fairShareTarget struct {
	url    string
	rdb    redis.UniversalClient
	prefix string
	// where names the processes cpu measures.
	where string
	// cpu is the scheduler's CPU seconds so far; commands its Redis
	// commands so far (llmsched_redis_commands_total).
	cpu      func() (float64, error)
	commands func(context.Context) (int64, error)
	// servers, when set (--fairshare-private), reads the private MariaDB's
	// and Redis's own counters: statements, commands, CPU µs.
	servers func(context.Context) (map[string]int64, error)
}

// targetOf is the target of a scheduler started by startSUT or
// startInProcess.
func targetOf(s *sut) fairShareTarget {
	t := fairShareTarget{url: s.url, rdb: s.rdb, prefix: s.prefix, where: "scheduler process", cpu: s.cpuSeconds, commands: s.redisCommands}
	if s.inproc != nil {
		t.where = "bench process: scheduler, embedded Redis and load"
	}
	return t
}

// fairShare is the state of one fair-share phase: the scheduler it drives,
// the models made so far and how many tasks each caller label was given.
type fairShare struct {
	s        fairShareTarget
	o        Options
	c        *client
	col      *collector
	models   int
	counts   map[string]int // tasks per caller label
	progress func(string, ...any)
}

// fairSharePairs are the measured pairs and their ratios, many callers
// over one caller.
type fairSharePairs struct {
	ones, manys       []fairShareRun
	rates, cpus, cmds []float64
}

func runFairShare(ctx context.Context, s fairShareTarget, o Options, rep *report, progress func(string, ...any)) error {
	col, err := newCollector(ctx, s.rdb, s.prefix)
	if err != nil {
		return err
	}
	defer col.close()
	f := &fairShare{s: s, o: o, c: newClient(s.url, o.Submitters+8), col: col, counts: map[string]int{}, progress: progress}
	load0 := loadAvg()
	ps, err := f.measure(ctx)
	if err != nil {
		return err
	}
	got, err := f.checkCallers(ctx)
	if err != nil {
		return err
	}
	f.report(rep, ps, got, load0)
	return nil
}

// label is task i's caller label in a run with this many callers.
func (f *fairShare) label(callers, i int) string {
	if callers == 1 {
		return "bench-solo"
	}
	return fmt.Sprintf("bench-caller-%d", i%callers)
}

// newModel creates a fresh simulator model for one run.
func (f *fairShare) newModel(ctx context.Context) (int, error) {
	f.models++
	var out struct {
		Data struct {
			ID int `json:"id"`
		} `json:"data"`
	}
	if _, err := f.c.do(ctx, http.MethodPost, "/api/v1/models", map[string]any{
		"name": fmt.Sprintf("bench-fairshare-%d", f.models), "type": "simulator", "max_workers": f.o.FairShareSlots, "status": "online",
		"config": map[string]any{"latency_ms": 0, "tokens_per_second": 0, "output_tokens": 16},
	}, &out); err != nil {
		return 0, fmt.Errorf("create a fair-share model: %w", err)
	}
	return out.Data.ID, nil
}

// fairShareCosts are the scheduler's cost counters at one moment.
type fairShareCosts struct {
	cpu     float64
	cmd     int64
	servers map[string]int64
}

// costs reads the scheduler's CPU, its Redis commands and, when the
// target has them, the private servers' counters.
func (f *fairShare) costs(ctx context.Context) (fairShareCosts, error) {
	var k fairShareCosts
	var err error
	if k.cpu, err = f.s.cpu(); err != nil {
		return k, err
	}
	if k.cmd, err = f.s.commands(ctx); err != nil {
		return k, err
	}
	if f.s.servers != nil {
		if k.servers, err = f.s.servers(ctx); err != nil {
			return k, err
		}
	}
	return k, nil
}

// run is one run: --tasks tasks on a fresh model, spread over callers.
func (f *fairShare) run(ctx context.Context, callers int) (fairShareRun, error) {
	model, err := f.newModel(ctx)
	if err != nil {
		return fairShareRun{}, err
	}
	k0, err := f.costs(ctx)
	if err != nil {
		return fairShareRun{}, err
	}
	r, err := runE2E(ctx, f.col, f.o.Tasks, f.o.Submitters, func(ctx context.Context, i int) (int, error) {
		return f.c.submitRESTAs(ctx, model, fmt.Sprintf("benchmark input %d", i), f.label(callers, i))
	})
	if err != nil {
		return fairShareRun{}, err
	}
	// The work that follows a task's completion event (asynq's done,
	// the slot's hand-off) belongs to the run: let it finish.
	time.Sleep(250 * time.Millisecond)
	k1, err := f.costs(ctx)
	if err != nil {
		return fairShareRun{}, err
	}
	n := float64(f.o.Tasks)
	res := fairShareRun{rate: r.rate(), p50: r.latency.pct(50), cpu: (k1.cpu - k0.cpu) / n, commands: float64(k1.cmd-k0.cmd) / n}
	if f.s.servers != nil {
		res.servers = map[string]float64{}
		for k, v := range k1.servers {
			res.servers[k] = float64(v-k0.servers[k]) / n
		}
	}
	for i := range f.o.Tasks {
		f.counts[f.label(callers, i)]++
	}
	return res, nil
}

// pair is one run with one caller and one with many, in an order that
// alternates with i.
func (f *fairShare) pair(ctx context.Context, i int) (one, many fairShareRun, err error) {
	if i%2 == 0 {
		if one, err = f.run(ctx, 1); err == nil {
			many, err = f.run(ctx, f.o.FairShareCallers)
		}
	} else {
		if many, err = f.run(ctx, f.o.FairShareCallers); err == nil {
			one, err = f.run(ctx, 1)
		}
	}
	return one, many, err
}

// measure runs the warm-up pair, then pairs until --fairshare-reps or the
// time budget.
func (f *fairShare) measure(ctx context.Context) (fairSharePairs, error) {
	var ps fairSharePairs
	o := f.o
	f.progress("fair share: warm-up pair of %d tasks per run (discarded)", o.Tasks)
	if _, _, err := f.pair(ctx, 0); err != nil {
		return ps, fmt.Errorf("fair share warm-up: %w", err)
	}
	start := time.Now()
	for i := range o.FairShareReps {
		if i >= fairShareMinPairs && time.Since(start) > o.FairShareTime {
			f.progress("fair share: time budget %s used after %d pairs", o.FairShareTime, i)
			break
		}
		one, many, err := f.pair(ctx, i)
		if err != nil {
			return ps, fmt.Errorf("fair share pair %d: %w", i+1, err)
		}
		ps.ones, ps.manys = append(ps.ones, one), append(ps.manys, many)
		ps.rates = append(ps.rates, many.rate/one.rate)
		ps.cpus = append(ps.cpus, many.cpu/one.cpu)
		ps.cmds = append(ps.cmds, many.commands/one.commands)
		f.progress("fair share pair %d: tasks/s 1 caller %.0f, %d callers %.0f (%.2fx); CPU ms/task %.2f | %.2f; Redis commands/task %.1f | %.1f",
			i+1, one.rate, o.FairShareCallers, many.rate, ps.rates[i], one.cpu*1000, many.cpu*1000, one.commands, many.commands)
	}
	return ps, nil
}

// checkCallers checks that the runs did what they say: each caller label
// holds its part of the tasks (a submission that lost its caller would
// make this a run of one caller against itself). It returns "label count"
// for each.
func (f *fairShare) checkCallers(ctx context.Context) ([]string, error) {
	labels := []string{"bench-solo"}
	for i := range f.o.FairShareCallers {
		labels = append(labels, fmt.Sprintf("bench-caller-%d", i))
	}
	var got []string
	for _, caller := range labels {
		var page struct {
			Pagination struct {
				Total int `json:"total"`
			} `json:"pagination"`
		}
		if _, err := f.c.do(ctx, http.MethodGet, fmt.Sprintf("/api/v1/tasks?caller=%s&page_size=1", caller), nil, &page); err != nil {
			return nil, fmt.Errorf("count %s's tasks: %w", caller, err)
		}
		if page.Pagination.Total != f.counts[caller] {
			return nil, fmt.Errorf("caller %s has %d tasks, want %d: the runs did not give the tasks their callers", caller, page.Pagination.Total, f.counts[caller])
		}
		got = append(got, fmt.Sprintf("%s %d", strings.TrimPrefix(caller, "bench-"), page.Pagination.Total))
	}
	return got, nil
}

// pick is f of each run.
func pick(rs []fairShareRun, f func(fairShareRun) float64) []float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	return v
}

// report writes the phase's rows and its target.
func (f *fairShare) report(rep *report, ps fairSharePairs, got []string, load0 string) {
	o := f.o
	ones, manys := ps.ones, ps.manys
	rate := func(r fairShareRun) float64 { return r.rate }
	p50 := func(r fairShareRun) float64 { return float64(r.p50) }
	cpu := func(r fairShareRun) float64 { return r.cpu * 1000 }
	commands := func(r fairShareRun) float64 { return r.commands }
	rep.row("fair share", "setup", fmt.Sprintf("%d measured pairs (+1 warm-up) of %d tasks per run, %d submitters, %d slots, a fresh model per run; load average %s at the start, %s at the end",
		len(ones), o.Tasks, o.Submitters, o.FairShareSlots, load0, loadAvg()))
	rep.row("fair share", "tasks per caller", strings.Join(got, ", "))
	rep.row("fair share", "median tasks/s 1 caller | many", fmt.Sprintf("%.0f | %.0f", median(pick(ones, rate)), median(pick(manys, rate))))
	rep.row("fair share", "median p50 submit->completed", fmt.Sprintf("%s | %s", ms(time.Duration(median(pick(ones, p50)))), ms(time.Duration(median(pick(manys, p50))))))
	rep.row("fair share", "median CPU ms per task ("+f.s.where+")", fmt.Sprintf("%.3f | %.3f", median(pick(ones, cpu)), median(pick(manys, cpu))))
	rep.row("fair share", "median Redis commands per task", fmt.Sprintf("%.2f | %.2f", median(pick(ones, commands)), median(pick(manys, commands))))
	for _, k := range serverKeys(ones) {
		v := func(r fairShareRun) float64 { return r.servers[k] }
		var rs []float64
		for i := range ones {
			rs = append(rs, v(manys[i])/v(ones[i]))
		}
		rep.row("fair share", "median "+k+" per task", fmt.Sprintf("%.3f | %.3f  (ratio %s)", median(pick(ones, v)), median(pick(manys, v)), spread(rs)))
	}
	rep.row("fair share", "throughput ratio per pair", ratios(ps.rates))
	rep.row("fair share", "CPU per task ratio per pair", ratios(ps.cpus))
	rep.row("fair share", "ratios many/1: median [p25-p75]", fmt.Sprintf("throughput %s, CPU per task %s, Redis commands per task %s", spread(ps.rates), spread(ps.cpus), spread(ps.cmds)))
	rates := ps.rates
	rep.target(fmt.Sprintf("fair share (%d callers) >= 0.9x 1 caller", o.FairShareCallers),
		fmt.Sprintf("median throughput ratio %.2fx over %d pairs", median(rates), len(rates)), median(rates) >= 0.9)
}

// serverKeys are the private servers' counters, sorted.
func serverKeys(rs []fairShareRun) []string {
	if len(rs) == 0 {
		return nil
	}
	var ks []string
	for k := range rs[0].servers {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func ratios(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(s, " ")
}

// spread is "median [p25-p75]" of v.
func spread(v []float64) string {
	return fmt.Sprintf("%.2f [%.2f-%.2f]", median(v), quantile(v, 0.25), quantile(v, 0.75))
}

func median(v []float64) float64 { return quantile(v, 0.5) }

// quantile interpolates linearly between the closest ranks.
func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	pos := q * float64(len(s)-1)
	lo := int(pos)
	if lo+1 >= len(s) {
		return s[lo]
	}
	return s[lo] + (pos-float64(lo))*(s[lo+1]-s[lo])
}

// cpuSeconds is the scheduler process's user and system CPU time so far
// (procCPU: /proc/<pid>/stat).
func (s *sut) cpuSeconds() (float64, error) {
	us, err := procCPU(s.pid)
	if err != nil {
		return 0, fmt.Errorf("read the scheduler's CPU time: %w", err)
	}
	return float64(us) / 1e6, nil
}

// redisCommands is how many Redis commands the scheduler has sent: its
// broker's counter in process, else the child's /metrics.
func (s *sut) redisCommands(ctx context.Context) (int64, error) {
	if s.inproc != nil {
		return s.inproc.Broker.Commands(), nil
	}
	return scrapeCommands(ctx, s.url)
}

// scrapeCommands reads llmsched_redis_commands_total from a process's
// /metrics at base.
func scrapeCommands(ctx context.Context, base string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("scrape the scheduler's /metrics: %w", err)
	}
	defer resp.Body.Close()
	const name = "llmsched_redis_commands_total "
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return 0, fmt.Errorf("parse %s%s: %w", name, v, err)
			}
			return int64(f), nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read the scheduler's /metrics: %w", err)
	}
	return 0, fmt.Errorf("the scheduler's /metrics has no %s(status %d)", strings.TrimSpace(name), resp.StatusCode)
}

// fairShareOnly runs only the fair-share phase (bench --fairshare-only),
// on MySQL + Redis when configured, else on the embedded default.
func fairShareOnly(ctx context.Context, cfg *config.Config, o Options, rep *report, log *slog.Logger, progress func(string, ...any), tmp string) error {
	if o.FairSharePrivate {
		return fairSharePrivate(ctx, o, rep, progress, tmp)
	}
	s, stop, err := startOnePhase(ctx, cfg, o, log, progress, filepath.Join(tmp, "fairshare.db"))
	if err != nil {
		return err
	}
	defer stop()
	return runFairShare(ctx, targetOf(s), o, rep, progress)
}

// fairSharePrivate runs the phase on a private MariaDB and Redis (scale.go's)
// with one api and one worker process, as a deployment runs: the servers'
// own counters (statements, commands, CPU) are then the scheduler's alone
// on a shared machine, and show whether many callers cost the database or
// Redis more work.
func fairSharePrivate(ctx context.Context, o Options, rep *report, progress func(string, ...any), tmp string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	progress("private MariaDB and Redis under %s", tmp)
	db, err := startMariaDB(ctx, filepath.Join(tmp, "mariadb"))
	if err != nil {
		return err
	}
	defer db.stop()
	if err := db.reset(ctx); err != nil {
		return err
	}
	r, err := startScaleRedis(filepath.Join(tmp, "redis"), "single")
	if err != nil {
		return err
	}
	defer r.stop()
	env := scaleEnv(db, r)
	if err := migrate(ctx, exe, env); err != nil {
		return err
	}
	var procs []*scaleProc
	defer func() { stopProcs(procs) }()
	for _, role := range []string{"api", "worker"} {
		p, err := startScaleProc(ctx, exe, role, env)
		if err != nil {
			return err
		}
		procs = append(procs, p)
	}
	pids := map[string][]int{"scheduler": {procs[0].cmd.Process.Pid, procs[1].cmd.Process.Pid}}
	t := fairShareTarget{url: procs[0].url, rdb: r.client, prefix: r.prefix, where: "api + worker processes",
		cpu: func() (float64, error) {
			us, err := cpuOf(pids)
			return float64(us["scheduler"]) / 1e6, err
		},
		commands: func(ctx context.Context) (int64, error) {
			var n int64
			for _, p := range procs {
				c, err := scrapeCommands(ctx, p.url)
				if err != nil {
					return 0, err
				}
				n += c
			}
			return n, nil
		},
		servers: func(ctx context.Context) (map[string]int64, error) {
			q, err := db.status(ctx)
			if err != nil {
				return nil, err
			}
			cmds, err := r.commandStats(ctx)
			if err != nil {
				return nil, err
			}
			cpu, err := cpuOf(map[string][]int{"mariadbd": {db.pid()}, "redis": r.pids()})
			if err != nil {
				return nil, err
			}
			var total int64
			for _, v := range cmds {
				total += v
			}
			return map[string]int64{"MySQL statements": q["Questions"], "Redis server commands": total,
				"mariadbd CPU µs": cpu["mariadbd"], "redis-server CPU µs": cpu["redis"]}, nil
		},
	}
	return runFairShare(ctx, t, o, rep, progress)
}
