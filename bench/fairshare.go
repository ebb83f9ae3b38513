package bench

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/llmsched/llm-scheduler/config"
)

// The fair-share phase (bench --fairshare-only) measures what fair share
// between callers costs (issue 17's target: at most 10% of end-to-end
// throughput against the same run with one caller). One scheduler, one
// zero-latency simulator model with few slots (--fairshare-slots, default
// 4) so that submissions outrun it and tasks wait in its parked queue,
// where the slot scripts give every task a fair-share tag. Each rep runs
// the REST end-to-end load twice on that model, once with every task from
// one caller and once with the tasks spread round robin over
// --fairshare-callers caller labels; the order of the two alternates from
// rep to rep so that drift on a shared machine hits both. The report gives
// each rep's ratio (many callers / one caller) and their median.

// fairShareRun is one E2E run's figures.
type fairShareRun struct {
	rate float64
	p50  time.Duration
}

func runFairShare(ctx context.Context, s *sut, o Options, rep *report, progress func(string, ...any)) error {
	c := newClient(s.url, o.Submitters+8)
	var out struct {
		Data struct {
			ID int `json:"id"`
		} `json:"data"`
	}
	if _, err := c.do(ctx, http.MethodPost, "/api/v1/models", map[string]any{
		"name": "bench-fairshare", "type": "simulator", "max_workers": o.FairShareSlots, "status": "online",
		"config": map[string]any{"latency_ms": 0, "tokens_per_second": 0, "output_tokens": 16},
	}, &out); err != nil {
		return fmt.Errorf("create the fair-share model: %w", err)
	}
	model := out.Data.ID
	col, err := newCollector(ctx, s.rdb, s.prefix)
	if err != nil {
		return err
	}
	defer col.close()
	submit := func(callers int) submitFunc {
		return func(ctx context.Context, i int) (int, error) {
			caller := "bench-solo"
			if callers > 1 {
				caller = fmt.Sprintf("bench-caller-%d", i%callers)
			}
			return c.submitRESTAs(ctx, model, fmt.Sprintf("benchmark input %d", i), caller)
		}
	}
	warm := min(200, o.Tasks)
	progress("fair share: warm-up %d tasks", warm)
	if _, err := runE2E(ctx, col, warm, o.Submitters, submit(o.FairShareCallers)); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	one := func() (fairShareRun, error) {
		r, err := runE2E(ctx, col, o.Tasks, o.Submitters, submit(1))
		return fairShareRun{r.rate(), r.latency.pct(50)}, err
	}
	many := func() (fairShareRun, error) {
		r, err := runE2E(ctx, col, o.Tasks, o.Submitters, submit(o.FairShareCallers))
		return fairShareRun{r.rate(), r.latency.pct(50)}, err
	}
	var ratios []float64
	var figures []string
	for i := range o.FairShareReps {
		progress("fair share rep %d/%d: %d tasks with 1 caller and with %d callers, %d submitters, %d slots",
			i+1, o.FairShareReps, o.Tasks, o.FairShareCallers, o.Submitters, o.FairShareSlots)
		var a, b fairShareRun
		var err error
		if i%2 == 0 {
			if a, err = one(); err == nil {
				b, err = many()
			}
		} else {
			if b, err = many(); err == nil {
				a, err = one()
			}
		}
		if err != nil {
			return fmt.Errorf("fair share rep %d: %w", i+1, err)
		}
		ratio := b.rate / a.rate
		ratios = append(ratios, ratio)
		figures = append(figures, fmt.Sprintf("%.2f", ratio))
		rep.row(fmt.Sprintf("fair share rep %d", i+1), "tasks/s 1 caller | many",
			fmt.Sprintf("%.0f | %.0f  (%.2fx; p50 submit->completed %s | %s)", a.rate, b.rate, ratio, ms(a.p50), ms(b.p50)))
	}
	// The runs did what they say: each caller label holds its part of the
	// tasks (a submission that lost its caller would make this a run of
	// one caller against itself).
	counts := make([]string, 0, o.FairShareCallers+1)
	for i := -1; i < o.FairShareCallers; i++ {
		caller := "bench-solo"
		if i >= 0 {
			caller = fmt.Sprintf("bench-caller-%d", i)
		}
		var page struct {
			Pagination struct {
				Total int `json:"total"`
			} `json:"pagination"`
		}
		if _, err := c.do(ctx, http.MethodGet, fmt.Sprintf("/api/v1/tasks?caller=%s&model_id=%d&page_size=1", caller, model), nil, &page); err != nil {
			return fmt.Errorf("count %s's tasks: %w", caller, err)
		}
		if page.Pagination.Total == 0 {
			return fmt.Errorf("no task of caller %s on the fair-share model: the runs did not spread the tasks over callers", caller)
		}
		counts = append(counts, fmt.Sprintf("%s %d", caller, page.Pagination.Total))
	}
	rep.row("fair share", "tasks per caller", strings.Join(counts, ", "))
	med := median(ratios)
	rep.row("fair share", "ratio per rep", strings.Join(figures, " "))
	rep.target(fmt.Sprintf("fair share (%d callers) >= 0.9x 1 caller", o.FairShareCallers),
		fmt.Sprintf("median %.2fx over %d reps", med, len(ratios)), med >= 0.9)
	return nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
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
