package bench

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// figures is what one rep measured: the baseline and the scheduler beside
// it, in the same minute. A full run makes Options.Reps of them and judges
// every target on the median over the reps (verdicts), so that one unlucky
// minute on a shared machine neither passes nor fails a target alone.
type figures struct {
	// base is the baseline's completed tasks/s (raw asynq + 1 INSERT + 2
	// UPDATEs per task).
	base float64
	// rest and gql are the scheduler's end-to-end completed tasks/s; gql is
	// 0 when GraphQL was not run.
	rest, gql float64
	// batch is batch intake in tasks accepted/s, 0 when not run.
	batch float64
	// pickup is the idle pickup p99 with 1 and with 50 online models;
	// idleCmds the scheduler's own Redis commands/s while idle then.
	pickup   [2]time.Duration
	idleCmds [2]float64
	// fanout* are the websocket fan-out phase's figures; fanoutRun is
	// false when it was not run.
	fanoutRun    bool
	fanoutP99    time.Duration
	fanoutRate   float64
	fanoutMissed int64
	// moderateP99 is submit-to-completed p99 at moderateRate tasks/s
	// offered open loop, half of this rep's end-to-end rate.
	moderateP99  time.Duration
	moderateRate float64
	// idleCPU is the % of one core an idle scheduler process used, by
	// kind ("embedded", "mysql"); missing kinds were not measured.
	idleCPU map[string]float64
	// embedded is the embedded default's end-to-end REST tasks/s, 0 when
	// not run.
	embedded float64
	// peakRSS is the scheduler child's peak RSS over total tasks; 0 when
	// the scheduler ran inside the bench process.
	peakRSS int64
	total   int
	// cpuBase and cpuRest are the CPU µs a task cost every process taking
	// part (cost.go) in the baseline and in the E2E REST run, 0 when not
	// measured; cpuRestOthers is cpuRest less the scheduler process.
	cpuBase, cpuRest, cpuRestOthers float64
}

// Targets. The figures are those of docs/performance.md.
const (
	targetE2E        = 1.0
	targetBatch      = 20000.0
	targetPickup     = 5 * time.Millisecond
	targetIdleCmds   = 200.0
	targetModerate   = 50 * time.Millisecond
	targetFanoutP99  = 100 * time.Millisecond
	targetFanoutRate = 500.0
	targetIdleCPU    = 1.0
	targetRSS        = 200 << 20
	targetEmbedded   = 0.8
)

// over is a figure over the reps: median, min and max.
type over []float64

func (v over) med() float64 { return median(v) }

// f formats the figure with verb and unit: the value of a single rep, else
// the median with min and max.
func (v over) f(verb, unit string) string {
	if len(v) == 0 {
		return "n/a"
	}
	if len(v) == 1 {
		return fmt.Sprintf(verb+unit, v[0])
	}
	return fmt.Sprintf("median "+verb+unit+" ("+verb+"-"+verb+", %d reps)", v.med(), slices.Min(v), slices.Max(v), len(v))
}

// each collects f of every rep that has the figure (ok).
func each(figs []figures, f func(figures) (float64, bool)) over {
	var v over
	for _, x := range figs {
		if y, ok := f(x); ok {
			v = append(v, y)
		}
	}
	return v
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// verdicts judges every target on the medians of figs and adds the target
// lines to rep. judge false (a --quick smoke run) prints the same figures
// as N/A: a small run proves the bench works, not how fast anything is.
func verdicts(rep *report, figs []figures, judge bool) {
	line := func(name, figure string, pass bool) {
		if !judge {
			rep.skip(name, figure+"; --quick judges nothing")
			return
		}
		rep.target(name, figure, pass)
	}
	rest := each(figs, func(f figures) (float64, bool) { return f.rest / f.base, f.base > 0 })
	gql := each(figs, func(f figures) (float64, bool) { return f.gql / f.base, f.base > 0 && f.gql > 0 })
	e2e := fmt.Sprintf("REST %s, GraphQL %s", rest.f("%.2f", "x"), gql.f("%.2f", "x"))
	line(fmt.Sprintf("E2E >= %.1fx baseline", targetE2E), e2e,
		len(gql) == len(figs) && rest.med() >= targetE2E && gql.med() >= targetE2E)
	if cb := each(figs, func(f figures) (float64, bool) { return f.cpuBase, f.cpuBase > 0 && f.cpuRest > 0 }); len(cb) > 0 {
		cr := each(figs, func(f figures) (float64, bool) { return f.cpuRest, f.cpuBase > 0 && f.cpuRest > 0 })
		fig := fmt.Sprintf("baseline %s, E2E REST %s", cb.f("%.0f", " us"), cr.f("%.0f", " us"))
		if co := each(figs, func(f figures) (float64, bool) { return f.cpuRestOthers, f.cpuRestOthers > 0 }); len(co) > 0 {
			fig += fmt.Sprintf(", E2E REST less the scheduler process %s", co.f("%.0f", " us"))
		}
		rep.row("all reps", "CPU per task, every process taking part", fig)
	}

	if batch := each(figs, func(f figures) (float64, bool) { return f.batch, f.batch > 0 }); len(batch) > 0 {
		line("batch intake >= 20,000 tasks/s", batch.f("%.0f", " tasks/s"), batch.med() >= targetBatch)
	} else {
		rep.skip("batch intake >= 20,000 tasks/s", "not run (GraphQL unavailable)")
	}

	p1 := each(figs, func(f figures) (float64, bool) { return msOf(f.pickup[0]), true })
	p50 := each(figs, func(f figures) (float64, bool) { return msOf(f.pickup[1]), true })
	c1 := each(figs, func(f figures) (float64, bool) { return f.idleCmds[0], true })
	c50 := each(figs, func(f figures) (float64, bool) { return f.idleCmds[1], true })
	line("idle pickup p99 <= 5 ms, <= 200 cmd/s",
		fmt.Sprintf("p99 %s / %s, %s / %s (1 / 50 models)", p1.f("%.1f", " ms"), p50.f("%.1f", " ms"), c1.f("%.0f", " cmd/s"), c50.f("%.0f", " cmd/s")),
		p1.med() <= msOf(targetPickup) && p50.med() <= msOf(targetPickup) &&
			c1.med() <= targetIdleCmds && c50.med() <= targetIdleCmds)

	mod := each(figs, func(f figures) (float64, bool) { return msOf(f.moderateP99), f.moderateRate > 0 })
	modRate := each(figs, func(f figures) (float64, bool) { return f.moderateRate, f.moderateRate > 0 })
	line("p99 <= 50 ms at half the max rate", fmt.Sprintf("p99 %s at %s (open loop)", mod.f("%.1f", " ms"), modRate.f("%.0f", " tasks/s")),
		len(mod) > 0 && mod.med() <= msOf(targetModerate))

	fanoutVerdict(rep, figs, line)
	idleCPUVerdict(figs, line)

	if rss := each(figs, func(f figures) (float64, bool) {
		return float64(f.peakRSS) / (1 << 20), f.peakRSS > 0 && f.total >= 20000
	}); len(rss) > 0 {
		line("peak RSS <= 200 MB", fmt.Sprintf("max %.0f MB (%d reps, each over >= 20,000 tasks)", slices.Max(rss), len(rss)),
			slices.Max(rss) <= float64(targetRSS)/(1<<20))
	} else {
		rep.skip("peak RSS <= 200 MB", "needs the scheduler in a child process over a 20,000-task rep (MySQL + Redis, not --quick)")
	}

	if emb := each(figs, func(f figures) (float64, bool) { return f.embedded / f.rest, f.embedded > 0 && f.rest > 0 }); len(emb) > 0 {
		line("embedded >= 0.8x MySQL+Redis E2E", emb.f("%.2f", "x"), emb.med() >= targetEmbedded)
	} else {
		rep.skip("embedded >= 0.8x MySQL+Redis E2E", "needs a MySQL + Redis run to compare with")
	}
}

func fanoutVerdict(rep *report, figs []figures, line func(string, string, bool)) {
	const name = "fan-out p99 <= 100 ms, no misses"
	p99 := each(figs, func(f figures) (float64, bool) { return msOf(f.fanoutP99), f.fanoutRun })
	if len(p99) == 0 {
		rep.skip(name, "not run (GraphQL unavailable)")
		return
	}
	rate := each(figs, func(f figures) (float64, bool) { return f.fanoutRate, f.fanoutRun })
	var missed int64
	for _, f := range figs {
		missed += f.fanoutMissed
	}
	line(name, fmt.Sprintf("p99 %s at %s, %d missed in all", p99.f("%.1f", " ms"), rate.f("%.0f", " tasks/s"), missed),
		p99.med() <= msOf(targetFanoutP99) && rate.med() >= targetFanoutRate && missed == 0)
}

func idleCPUVerdict(figs []figures, line func(string, string, bool)) {
	var parts []string
	pass := true
	for _, kind := range []string{"embedded", "mysql"} {
		v := each(figs, func(f figures) (float64, bool) { c, ok := f.idleCPU[kind]; return c, ok })
		if len(v) == 0 {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %s", kind, v.f("%.2f", "%%")))
		pass = pass && v.med() <= targetIdleCPU
	}
	if len(parts) == 0 {
		parts, pass = []string{"not measured"}, false
	}
	line("idle process <= 1% of a core", strings.Join(parts, "; "), pass)
}
