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

// run runs every phase and returns the REST end-to-end rate.
func (p *phases) run(ctx context.Context, baseRate float64, child bool) (float64, error) {
	if err := p.setup(ctx); err != nil {
		return 0, err
	}
	defer p.col.close()
	stopProf, err := profile(p.o.CPUProfile)
	if err != nil {
		return 0, err
	}
	defer stopProf()

	// End to end through REST.
	p.progress("%send to end (REST): %d tasks, %d submitters", p.label, p.o.Tasks, p.o.Submitters)
	rest, err := runE2E(ctx, p.col, p.o.Tasks, p.o.Submitters, p.restSubmit())
	if err != nil {
		return 0, fmt.Errorf("end to end (REST): %w", err)
	}
	p.total += p.o.Tasks
	p.rep.row(p.label+"E2E REST", "completed tasks/s", fmt.Sprintf("%.0f (%.2fx baseline)", rest.rate(), rest.rate()/baseRate))
	p.rep.row(p.label+"E2E REST", "submit->completed", rest.latency.summary())
	e2eFigure := fmt.Sprintf("REST %.2fx", rest.rate()/baseRate)
	worst := rest.rate() / baseRate

	// End to end through GraphQL.
	gqlOK, why := p.gql.available(ctx)
	if gqlOK {
		p.progress("%send to end (GraphQL): %d tasks, %d submitters", p.label, p.o.Tasks, p.o.Submitters)
		g, err := runE2E(ctx, p.col, p.o.Tasks, p.o.Submitters, func(ctx context.Context, i int) (int, error) {
			return p.gql.createTask(ctx, p.modelID, fmt.Sprintf("benchmark input %d", i))
		})
		if err != nil {
			return 0, fmt.Errorf("end to end (GraphQL): %w", err)
		}
		p.total += p.o.Tasks
		p.rep.row(p.label+"E2E GraphQL", "completed tasks/s", fmt.Sprintf("%.0f (%.2fx baseline)", g.rate(), g.rate()/baseRate))
		p.rep.row(p.label+"E2E GraphQL", "submit->completed", g.latency.summary())
		e2eFigure += fmt.Sprintf(", GraphQL %.2fx", g.rate()/baseRate)
		worst = min(worst, g.rate()/baseRate)
	} else {
		p.rep.row(p.label+"E2E GraphQL", "not run", why)
		e2eFigure += ", GraphQL not run"
	}
	p.rep.target("E2E >= 0.7x baseline", fmt.Sprintf("%s (baseline %.0f tasks/s)", e2eFigure, baseRate), gqlOK && worst >= 0.7)

	// Batch intake through GraphQL createTasks.
	if gqlOK {
		if err := p.batchIntake(ctx); err != nil {
			return 0, err
		}
	} else {
		p.rep.row(p.label+"batch intake", "not run", why)
		p.rep.skip("batch intake >= 10,000 tasks/s", "not run: "+why)
	}

	// Idle pickup and idle Redis load, with 1 and with 50 online models.
	idle1, pick1, err := p.idlePhase(ctx, 1)
	if err != nil {
		return 0, err
	}
	p.progress("%sregistering 49 more online models", p.label)
	for i := 2; i <= 50; i++ {
		if _, err := p.c.createModel(ctx, fmt.Sprintf("bench-sim-%d", i), 2, "online"); err != nil {
			return 0, err
		}
	}
	idle50, pick50, err := p.idlePhase(ctx, 50)
	if err != nil {
		return 0, err
	}
	own := func(l idleLoad) float64 {
		if l.own >= 0 {
			return l.own
		}
		return l.server
	}
	independent := own(idle50) <= own(idle1)*1.25+50 && pick50.pct(99) <= pick1.pct(99)*2+2*time.Millisecond
	p.rep.target("idle pickup p99 <= 10 ms, <= 2,000 cmd/s",
		fmt.Sprintf("p99 %s / %s, %.0f / %.0f cmd/s (1 / 50 models)", ms(pick1.pct(99)), ms(pick50.pct(99)), own(idle1), own(idle50)),
		pick1.pct(99) <= 10*time.Millisecond && pick50.pct(99) <= 10*time.Millisecond &&
			own(idle1) <= 2000 && own(idle50) <= 2000 && independent)

	// Fan-out to websocket subscribers.
	if gqlOK {
		if err := p.fanOut(ctx); err != nil {
			return 0, err
		}
	} else {
		p.rep.row(p.label+"fan-out", "not run", why)
		p.rep.skip("fan-out p99 <= 100 ms, no misses", "not run: "+why)
	}

	// Memory.
	peak, cur, err := p.s.memory()
	if err != nil {
		return 0, err
	}
	who := "scheduler child process"
	if !child {
		who = "bench process (scheduler runs in it)"
	}
	p.rep.row(p.label+"memory", "peak RSS (VmHWM), "+who, fmt.Sprintf("%.0f MB (now %.0f MB) over %d tasks", mb(peak), mb(cur), p.total))
	switch {
	case !child:
		p.rep.skip("peak RSS <= 200 MB", fmt.Sprintf("%.0f MB, but the scheduler shares the bench process", mb(peak)))
	case p.total < 20000:
		p.rep.skip("peak RSS <= 200 MB", fmt.Sprintf("%.0f MB over only %d tasks (needs a 20,000-task run)", mb(peak), p.total))
	default:
		p.rep.target("peak RSS <= 200 MB", fmt.Sprintf("%.0f MB over %d tasks", mb(peak), p.total), peak <= 200<<20)
	}
	return rest.rate(), nil
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
