package bench

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/llmsched/llm-scheduler/internal/config"
)

// TestFairShareBenchRuns runs bench --fairshare-only on the embedded
// default at a tiny size: a warm-up pair, then three measured pairs, each
// giving a throughput, a CPU and a Redis-commands ratio; the target line
// carries the median throughput ratio; the tasks went to every caller label
// in the numbers the runs submitted (the bench refuses a run whose tasks
// lost their callers), and the scheduler's Redis commands were counted.
func TestFairShareBenchRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a scheduler")
	}
	cfg := config.Defaults(true)
	cfg.App.Env = "development"
	var out, logs bytes.Buffer
	o := Options{FairShareOnly: true, Tasks: 40, Submitters: 4, FairShareReps: 3, FairShareCallers: 3, FairShareSlots: 2}
	if err := Run(context.Background(), &cfg, o, &out, &logs); err != nil {
		t.Fatalf("bench: %v\n%s", err, logs.String())
	}
	report := out.String()
	t.Log(report)
	// 4 pairs (one warm-up) of 40 tasks: 160 from the solo caller, 160
	// spread over 3 labels round robin (14, 13, 13 per run).
	for _, want := range []string{"3 measured pairs (+1 warm-up) of 40 tasks per run", "solo 160, caller-0 56, caller-1 52, caller-2 52"} {
		if !strings.Contains(report, want) {
			t.Fatalf("report lacks %q", want)
		}
	}
	for _, re := range []string{
		`throughput ratio per pair\s+\d+\.\d\d \d+\.\d\d \d+\.\d\d\n`,
		`CPU per task ratio per pair\s+\d+\.\d\d \d+\.\d\d \d+\.\d\d\n`,
		`median Redis commands per task\s+[1-9]\d*\.\d\d \| [1-9]\d*\.\d\d\n`,
		`throughput \d+\.\d\d \[\d+\.\d\d-\d+\.\d\d\], CPU per task \d+\.\d\d \[\d+\.\d\d-\d+\.\d\d\], Redis commands per task \d+\.\d\d \[\d+\.\d\d-\d+\.\d\d\]`,
		`TARGET fair share \(3 callers\) >= 0.9x 1 caller\s+median throughput ratio \d+\.\d\dx over 3 pairs\s+(PASS|FAIL)`,
	} {
		if !regexp.MustCompile(re).MatchString(report) {
			t.Fatalf("report lacks %s", re)
		}
	}
}

// TestQuantile: the median and quartiles the verdict and spreads use.
func TestQuantile(t *testing.T) {
	for _, tc := range []struct {
		desc string
		v    []float64
		q    float64
		want float64
	}{
		{"median of odd", []float64{3, 1, 2}, 0.5, 2},
		{"median of even", []float64{4, 1, 3, 2}, 0.5, 2.5},
		{"first quartile interpolates", []float64{1, 2, 3, 4, 5}, 0.25, 2},
		{"third quartile interpolates", []float64{1, 2, 3, 4}, 0.75, 3.25},
		{"one value", []float64{7}, 0.25, 7},
		{"none", nil, 0.5, 0},
	} {
		if got := quantile(tc.v, tc.q); got != tc.want {
			t.Errorf("%s: quantile(%v, %v) = %v, want %v", tc.desc, tc.v, tc.q, got, tc.want)
		}
	}
}
