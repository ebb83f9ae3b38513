package bench

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// moderate offers tasks open loop at half of this rep's end-to-end REST
// rate for o.ModerateWindow and measures submit-to-completed latency. Each
// task's latency counts from when it was due to be submitted, not from
// when a submitter got to it, so a scheduler that falls behind is charged
// for the wait (no coordinated omission).
func (p *phases) moderate(ctx context.Context, f *figures) error {
	rate := f.rest / 2
	if rate <= 0 {
		return fmt.Errorf("moderate load: no end-to-end rate to take half of")
	}
	n := max(int(rate*p.o.ModerateWindow.Seconds()), 20)
	interval := time.Duration(float64(time.Second) / rate)
	p.progress("%smoderate load: %d tasks open loop at %.0f tasks/s", p.label, n, rate)
	due := make([]time.Time, n)
	ids := make([]int, n)
	errc := make(chan error, n)
	inflight := make(chan struct{}, 512)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		due[i] = start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(due[i]))
		inflight <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-inflight }()
			id, err := p.c.submitREST(ctx, p.modelID, fmt.Sprintf("moderate load %d", i))
			if err != nil {
				errc <- err
				return
			}
			ids[i] = id
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return fmt.Errorf("moderate load: %w", err)
	}
	if err := p.col.wait(ctx, ids, true, time.Duration(n)*20*time.Millisecond+60*time.Second); err != nil {
		return fmt.Errorf("moderate load: %w", err)
	}
	lat := make(latencies, n)
	for i, id := range ids {
		t, _ := p.col.at(id, true)
		lat[i] = t.Sub(due[i])
	}
	p.total += n
	offered := throughput(n, due[n-1].Sub(start)+interval)
	p.rep.row(p.label+"moderate load (open loop)", "offered tasks/s", fmt.Sprintf("%.0f (half of E2E REST)", offered))
	p.rep.row(p.label+"moderate load (open loop)", "due->completed", lat.summary())
	f.moderateP99, f.moderateRate = lat.pct(99), offered
	return nil
}
