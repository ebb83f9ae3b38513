package bench

import (
	"fmt"
	"slices"
	"time"
)

// latencies summarises a set of durations.
type latencies []time.Duration

// pct returns the p-th percentile (0..100), nearest rank.
func (l latencies) pct(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// summary formats p50/p95/p99.
func (l latencies) summary() string {
	if len(l) == 0 {
		return "n/a"
	}
	return fmt.Sprintf("p50 %s  p95 %s  p99 %s", ms(l.pct(50)), ms(l.pct(95)), ms(l.pct(99)))
}

// throughput is tasks per second over a wall-clock span.
func throughput(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
