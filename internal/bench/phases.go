package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/llmsched/llm-scheduler/internal/config"
)

// phases runs the scheduler measurements against one system under test.
type phases struct {
	s        *sut
	o        Options
	cfg      *config.Config
	rep      *report
	progress func(string, ...any)
	label    string
	idle     func(ctx context.Context, window time.Duration) (idleLoad, error)
	// meter, when set, reads the E2E REST run's cost per task, reported
	// beside the baseline's (baseCost).
	meter    *costMeter
	baseCost taskCost

	c       *client
	col     *collector
	gql     *gqlClient
	modelID int
	total   int
}

func (p *phases) setup(ctx context.Context) error {
	p.c = newClient(p.s.url, p.o.Submitters+8)
	id, err := p.c.createModel(ctx, "bench-sim-1", p.cfg.Worker.MaxWorkers, "online")
	if err != nil {
		return fmt.Errorf("create bench model: %w", err)
	}
	p.modelID = id
	if p.col, err = newCollector(ctx, p.s.rdb, p.s.prefix); err != nil {
		return err
	}
	p.gql = newGQLClient(p.s.url, p.c.http)
	warm := min(200, p.o.Tasks)
	p.progress("%swarm-up: %d tasks", p.label, warm)
	if _, err := runE2E(ctx, p.col, warm, p.o.Submitters, p.restSubmit()); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	p.total += warm
	return nil
}

func (p *phases) restSubmit() submitFunc {
	return func(ctx context.Context, i int) (int, error) {
		return p.c.submitREST(ctx, p.modelID, fmt.Sprintf("benchmark input %d", i))
	}
}

// e2eOnly is the embedded comparison: one end-to-end REST run.
func (p *phases) e2eOnly(ctx context.Context) (float64, error) {
	if err := p.setup(ctx); err != nil {
		return 0, err
	}
	defer p.col.close()
	p.progress("%send to end (REST): %d tasks", p.label, p.o.Tasks)
	res, err := runE2E(ctx, p.col, p.o.Tasks, p.o.Submitters, p.restSubmit())
	if err != nil {
		return 0, err
	}
	p.rep.row(p.label+"E2E REST", "completed tasks/s", fmt.Sprintf("%.0f", res.rate()))
	p.rep.row(p.label+"E2E REST", "submit->completed", res.latency.summary())
	return res.rate(), nil
}

// run runs every phase of one rep against the scheduler and returns what
// it measured beside baseRate, the baseline of the same rep.
func (p *phases) run(ctx context.Context, baseRate float64, child bool) (_ figures, err error) {
	f := figures{base: baseRate}
	if err := p.setup(ctx); err != nil {
		return f, err
	}
	defer p.col.close()
	stopProf, err := profile(p.o.CPUProfile)
	if err != nil {
		return f, err
	}
	defer func() {
		if perr := stopProf(); perr != nil && err == nil {
			err = perr
		}
	}()
	gqlOK, why := p.gql.available(ctx)
	if err := p.endToEnd(ctx, &f, gqlOK, why); err != nil {
		return f, err
	}
	if gqlOK {
		if err := p.batchIntake(ctx, &f); err != nil {
			return f, err
		}
	} else {
		p.rep.row(p.label+"batch intake", "not run", why)
	}
	if err := p.idlePhases(ctx, &f); err != nil {
		return f, err
	}
	if err := p.moderate(ctx, &f); err != nil {
		return f, err
	}
	if gqlOK {
		if err := p.fanOut(ctx, &f); err != nil {
			return f, err
		}
	} else {
		p.rep.row(p.label+"fan-out", "not run", why)
	}
	if err := p.idleCPU(ctx, &f, child); err != nil {
		return f, err
	}
	return f, p.memory(&f, child)
}

// endToEnd runs the end-to-end phases: REST, then GraphQL when available.
func (p *phases) endToEnd(ctx context.Context, f *figures, gqlOK bool, why string) error {
	p.progress("%send to end (REST): %d tasks, %d submitters", p.label, p.o.Tasks, p.o.Submitters)
	var before costSnap
	if p.meter != nil {
		var err error
		if before, err = p.meter.snap(ctx); err != nil {
			return err
		}
	}
	rest, err := runE2E(ctx, p.col, p.o.Tasks, p.o.Submitters, p.restSubmit())
	if err != nil {
		return fmt.Errorf("end to end (REST): %w", err)
	}
	if p.meter != nil {
		c, err := p.meter.since(ctx, before, rest.n)
		if err != nil {
			return err
		}
		costRows(p.rep, p.label, p.baseCost, c)
		f.cpuBase, f.cpuRest = p.baseCost.total(), c.total()
		if others, child := c.others(); child {
			f.cpuRestOthers = others
		}
	}
	p.total += p.o.Tasks
	f.rest = rest.rate()
	p.rep.row(p.label+"E2E REST", "completed tasks/s", fmt.Sprintf("%.0f (%.2fx baseline)", f.rest, f.rest/f.base))
	p.rep.row(p.label+"E2E REST", "submit->completed", rest.latency.summary())
	if !gqlOK {
		p.rep.row(p.label+"E2E GraphQL", "not run", why)
		return nil
	}
	p.progress("%send to end (GraphQL): %d tasks, %d submitters", p.label, p.o.Tasks, p.o.Submitters)
	g, err := runE2E(ctx, p.col, p.o.Tasks, p.o.Submitters, func(ctx context.Context, i int) (int, error) {
		return p.gql.createTask(ctx, p.modelID, fmt.Sprintf("benchmark input %d", i))
	})
	if err != nil {
		return fmt.Errorf("end to end (GraphQL): %w", err)
	}
	p.total += p.o.Tasks
	f.gql = g.rate()
	p.rep.row(p.label+"E2E GraphQL", "completed tasks/s", fmt.Sprintf("%.0f (%.2fx baseline)", f.gql, f.gql/f.base))
	p.rep.row(p.label+"E2E GraphQL", "submit->completed", g.latency.summary())
	return nil
}

// idlePhases measures idle Redis load and idle pickup with 1, then with 50
// online models.
func (p *phases) idlePhases(ctx context.Context, f *figures) error {
	idle1, pick1, err := p.idlePhase(ctx, 1)
	if err != nil {
		return err
	}
	p.progress("%sregistering 49 more online models", p.label)
	for i := 2; i <= 50; i++ {
		if _, err := p.c.createModel(ctx, fmt.Sprintf("bench-sim-%d", i), 2, "online"); err != nil {
			return err
		}
	}
	idle50, pick50, err := p.idlePhase(ctx, 50)
	if err != nil {
		return err
	}
	own := func(l idleLoad) float64 {
		if l.own >= 0 {
			return l.own
		}
		return l.server
	}
	f.pickup = [2]time.Duration{pick1.pct(99), pick50.pct(99)}
	f.idleCmds = [2]float64{own(idle1), own(idle50)}
	return nil
}

// memory records the scheduler's peak RSS (a child process only: in
// process, the bench's own memory would count too).
func (p *phases) memory(f *figures, child bool) error {
	peak, cur, err := p.s.memory()
	if err != nil {
		return err
	}
	who := "scheduler child process"
	if !child {
		who = "bench process (scheduler runs in it)"
	} else {
		f.peakRSS = peak
	}
	f.total = p.total
	p.rep.row(p.label+"memory", "peak RSS (VmHWM), "+who, fmt.Sprintf("%.0f MB (now %.0f MB) over %d tasks", mb(peak), mb(cur), p.total))
	return nil
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

// idlePhase waits for the system to be idle, measures its Redis load and
// then the idle pickup latency.
func (p *phases) idlePhase(ctx context.Context, models int) (idleLoad, latencies, error) {
	time.Sleep(time.Second)
	p.progress("%sidle Redis load with %d online model(s), %s", p.label, models, p.o.IdleWindow)
	load, err := p.idle(ctx, p.o.IdleWindow)
	if err != nil {
		return idleLoad{}, nil, err
	}
	name := fmt.Sprintf("%sidle, %d model(s)", p.label, models)
	if load.own >= 0 && load.own != load.server {
		p.rep.row(name, "Redis cmd/s (this scheduler's DB, MONITOR)", fmt.Sprintf("%.0f", load.own))
		p.rep.row(name, "Redis cmd/s (INFO, whole server)", fmt.Sprintf("%.0f", load.server))
	} else {
		p.rep.row(name, "Redis cmd/s", fmt.Sprintf("%.0f", load.server))
	}
	p.progress("%sidle pickup with %d model(s): %d single tasks", p.label, models, p.o.IdleSamples)
	lat, err := idlePickup(ctx, p.col, p.c, p.modelID, p.o.IdleSamples)
	if err != nil {
		return idleLoad{}, nil, fmt.Errorf("idle pickup: %w", err)
	}
	p.total += p.o.IdleSamples
	p.rep.row(name, "submit->running", lat.summary())
	return load, lat, nil
}
