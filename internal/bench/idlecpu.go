package bench

import (
	"context"
	"fmt"
	"os"
	"time"
)

// idleCPU measures how much of one core an idle scheduler process uses,
// from its utime + stime in /proc over o.IdleCPUWindow: a freshly started
// embedded-default process (`serve` with no configuration, as a newcomer
// runs it) and, when the scheduler under test is a child on MySQL + Redis,
// that process too, now that its work is done. Both are measured over the
// same window, after a settling second.
func (p *phases) idleCPU(ctx context.Context, f *figures, child bool) error {
	dir, err := os.MkdirTemp("", "llmsched-bench-idle-")
	if err != nil {
		return err
	}
	defer removeTemp(dir, p.progress)
	emb, err := startEmbeddedChild(ctx, dir, os.Stderr)
	if err != nil {
		return fmt.Errorf("idle CPU: start an embedded scheduler: %w", err)
	}
	defer emb.stop()
	procs := map[string]int{"embedded": emb.pid}
	if child {
		procs["mysql"] = p.s.pid
	}
	p.progress("%sidle CPU of %d process(es) over %s", p.label, len(procs), p.o.IdleCPUWindow)
	time.Sleep(time.Second)
	before := map[string]int64{}
	for k, pid := range procs {
		if before[k], err = procCPU(pid); err != nil {
			return err
		}
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(p.o.IdleCPUWindow):
	}
	el := time.Since(t0)
	f.idleCPU = map[string]float64{}
	for k, pid := range procs {
		after, err := procCPU(pid)
		if err != nil {
			return err
		}
		pct := float64(after-before[k]) / float64(el.Microseconds()) * 100
		f.idleCPU[k] = pct
		p.rep.row(p.label+"idle process ("+k+")", "CPU, % of one core", fmt.Sprintf("%.2f%% over %s", pct, el.Round(time.Second)))
	}
	return nil
}
