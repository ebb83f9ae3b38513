package bench

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/llmsched/llm-scheduler/config"
)

// TestFairShareBenchRuns runs bench --fairshare-only on the embedded
// default at a tiny size: every rep gives a ratio, the target line carries
// their median, and the tasks went to every caller label (the bench
// refuses a run whose tasks lost their callers).
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
	for _, want := range []string{"fair share rep 3", "bench-caller-2 ", "bench-solo "} {
		if !strings.Contains(report, want) {
			t.Fatalf("report lacks %q", want)
		}
	}
	if !regexp.MustCompile(`ratio per rep\s+\d+\.\d\d \d+\.\d\d \d+\.\d\d\n`).MatchString(report) {
		t.Fatal("report lacks the three ratios")
	}
	if !regexp.MustCompile(`TARGET fair share \(3 callers\) >= 0.9x 1 caller\s+median \d+\.\d\dx over 3 reps\s+(PASS|FAIL)`).MatchString(report) {
		t.Fatal("report lacks the target line with the median")
	}
}
