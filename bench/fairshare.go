package bench

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/llmsched/llm-scheduler/config"
)

// The fair-share phase (bench --fairshare-only) measures what fair share
// between callers costs (issue 17's target: at most 10% of end-to-end
// throughput against the same run with one caller).
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
}

// fairShareMinPairs is how many measured pairs run even past the budget.
const fairShareMinPairs = 3

func runFairShare(ctx context.Context, s *sut, o Options, rep *report, progress func(string, ...any)) error {
	c := newClient(s.url, o.Submitters+8)
	col, err := newCollector(ctx, s.rdb, s.prefix)
	if err != nil {
		return err
	}
	defer col.close()
	models := 0
	counts := map[string]int{} // tasks per caller label
	run := func(callers int) (fairShareRun, error) {
		models++
		var out struct {
			Data struct {
				ID int `json:"id"`
			} `json:"data"`
		}
		if _, err := c.do(ctx, http.MethodPost, "/api/v1/models", map[string]any{
			"name": fmt.Sprintf("bench-fairshare-%d", models), "type": "simulator", "max_workers": o.FairShareSlots, "status": "online",
			"config": map[string]any{"latency_ms": 0, "tokens_per_second": 0, "output_tokens": 16},
		}, &out); err != nil {
			return fairShareRun{}, fmt.Errorf("create a fair-share model: %w", err)
		}
		model := out.Data.ID
		label := func(i int) string {
			if callers == 1 {
				return "bench-solo"
			}
			return fmt.Sprintf("bench-caller-%d", i%callers)
		}
		cpu0, err := s.cpuSeconds()
		if err != nil {
			return fairShareRun{}, err
		}
		cmd0, err := s.redisCommands(ctx)
		if err != nil {
			return fairShareRun{}, err
		}
		r, err := runE2E(ctx, col, o.Tasks, o.Submitters, func(ctx context.Context, i int) (int, error) {
			return c.submitRESTAs(ctx, model, fmt.Sprintf("benchmark input %d", i), label(i))
		})
		if err != nil {
			return fairShareRun{}, err
		}
		// The work that follows a task's completion event (asynq's done,
		// the slot's hand-off) belongs to the run: let it finish.
		time.Sleep(250 * time.Millisecond)
		cpu1, err := s.cpuSeconds()
		if err != nil {
			return fairShareRun{}, err
		}
		cmd1, err := s.redisCommands(ctx)
		if err != nil {
			return fairShareRun{}, err
		}
		for i := range o.Tasks {
			counts[label(i)]++
		}
		n := float64(o.Tasks)
		return fairShareRun{rate: r.rate(), p50: r.latency.pct(50), cpu: (cpu1 - cpu0) / n, commands: float64(cmd1-cmd0) / n}, nil
	}
	pair := func(i int) (one, many fairShareRun, err error) {
		if i%2 == 0 {
			if one, err = run(1); err == nil {
				many, err = run(o.FairShareCallers)
			}
		} else {
			if many, err = run(o.FairShareCallers); err == nil {
				one, err = run(1)
			}
		}
		return one, many, err
	}

	load0 := loadAvg()
	progress("fair share: warm-up pair of %d tasks per run (discarded)", o.Tasks)
	if _, _, err := pair(0); err != nil {
		return fmt.Errorf("fair share warm-up: %w", err)
	}
	var rates, cpus, cmds []float64
	var ones, manys []fairShareRun
	start := time.Now()
	for i := range o.FairShareReps {
		if i >= fairShareMinPairs && time.Since(start) > o.FairShareTime {
			progress("fair share: time budget %s used after %d pairs", o.FairShareTime, i)
			break
		}
		one, many, err := pair(i)
		if err != nil {
			return fmt.Errorf("fair share pair %d: %w", i+1, err)
		}
		ones, manys = append(ones, one), append(manys, many)
		rates = append(rates, many.rate/one.rate)
		cpus = append(cpus, many.cpu/one.cpu)
		cmds = append(cmds, many.commands/one.commands)
		progress("fair share pair %d: tasks/s 1 caller %.0f, %d callers %.0f (%.2fx); CPU ms/task %.2f | %.2f; Redis commands/task %.1f | %.1f",
			i+1, one.rate, o.FairShareCallers, many.rate, rates[i], one.cpu*1000, many.cpu*1000, one.commands, many.commands)
	}

	// The runs did what they say: each caller label holds its part of the
	// tasks (a submission that lost its caller would make this a run of
	// one caller against itself).
	labels := []string{"bench-solo"}
	for i := range o.FairShareCallers {
		labels = append(labels, fmt.Sprintf("bench-caller-%d", i))
	}
	var got []string
	for _, caller := range labels {
		var page struct {
			Pagination struct {
				Total int `json:"total"`
			} `json:"pagination"`
		}
		if _, err := c.do(ctx, http.MethodGet, fmt.Sprintf("/api/v1/tasks?caller=%s&page_size=1", caller), nil, &page); err != nil {
			return fmt.Errorf("count %s's tasks: %w", caller, err)
		}
		if page.Pagination.Total != counts[caller] {
			return fmt.Errorf("caller %s has %d tasks, want %d: the runs did not give the tasks their callers", caller, page.Pagination.Total, counts[caller])
		}
		got = append(got, fmt.Sprintf("%s %d", strings.TrimPrefix(caller, "bench-"), page.Pagination.Total))
	}

	where := "scheduler process"
	if s.inproc != nil {
		where = "bench process: scheduler, embedded Redis and load"
	}
	pick := func(rs []fairShareRun, f func(fairShareRun) float64) []float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		return v
	}
	rate := func(r fairShareRun) float64 { return r.rate }
	p50 := func(r fairShareRun) float64 { return float64(r.p50) }
	cpu := func(r fairShareRun) float64 { return r.cpu * 1000 }
	commands := func(r fairShareRun) float64 { return r.commands }
	rep.row("fair share", "setup", fmt.Sprintf("%d measured pairs (+1 warm-up) of %d tasks per run, %d submitters, %d slots, a fresh model per run; load average %s at the start, %s at the end",
		len(ones), o.Tasks, o.Submitters, o.FairShareSlots, load0, loadAvg()))
	rep.row("fair share", "tasks per caller", strings.Join(got, ", "))
	rep.row("fair share", "median tasks/s 1 caller | many", fmt.Sprintf("%.0f | %.0f", median(pick(ones, rate)), median(pick(manys, rate))))
	rep.row("fair share", "median p50 submit->completed", fmt.Sprintf("%s | %s", ms(time.Duration(median(pick(ones, p50)))), ms(time.Duration(median(pick(manys, p50))))))
	rep.row("fair share", "median CPU ms per task ("+where+")", fmt.Sprintf("%.3f | %.3f", median(pick(ones, cpu)), median(pick(manys, cpu))))
	rep.row("fair share", "median Redis commands per task", fmt.Sprintf("%.2f | %.2f", median(pick(ones, commands)), median(pick(manys, commands))))
	rep.row("fair share", "throughput ratio per pair", ratios(rates))
	rep.row("fair share", "CPU per task ratio per pair", ratios(cpus))
	rep.row("fair share", "ratios many/1: median [p25-p75]", fmt.Sprintf("throughput %s, CPU per task %s, Redis commands per task %s", spread(rates), spread(cpus), spread(cmds)))
	rep.target(fmt.Sprintf("fair share (%d callers) >= 0.9x 1 caller", o.FairShareCallers),
		fmt.Sprintf("median throughput ratio %.2fx over %d pairs", median(rates), len(rates)), median(rates) >= 0.9)
	return nil
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
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/metrics", nil)
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
	var s *sut
	var err error
	if external(cfg) {
		claim, release, cerr := claimExternal(ctx, cfg, o, progress)
		if cerr != nil {
			return cerr
		}
		defer release()
		s, err = startSUT(ctx, cfg, o, claim, log)
	} else {
		progress("embedded default (SQLite + in-process Redis)")
		cfg.Database.SQLitePath = filepath.Join(tmp, "fairshare.db")
		s, err = startInProcess(ctx, cfg, log)
	}
	if err != nil {
		return err
	}
	defer s.stop()
	return runFairShare(ctx, s, o, rep, progress)
}
