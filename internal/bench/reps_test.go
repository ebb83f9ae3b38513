package bench

import (
	"strings"
	"testing"
	"time"
)

// goodRep is a rep that meets every target.
func goodRep() figures {
	return figures{
		base: 1000, rest: 1100, gql: 1050, batch: 25000,
		pickup: [2]time.Duration{3 * time.Millisecond, 4 * time.Millisecond}, idleCmds: [2]float64{120, 150},
		fanoutRun: true, fanoutP99: 40 * time.Millisecond, fanoutRate: 800,
		moderateP99: 30 * time.Millisecond, moderateRate: 550,
		idleCPU:  map[string]float64{"embedded": 0.5, "mysql": 0.4},
		embedded: 1000, peakRSS: 150 << 20, total: 40000,
	}
}

// verdictOf runs verdicts and returns the verdict word of the target whose
// name starts with prefix.
func verdictOf(t *testing.T, figs []figures, judge bool, prefix string) string {
	t.Helper()
	rep := &report{}
	verdicts(rep, figs, judge)
	for _, l := range rep.targets {
		if strings.HasPrefix(l.name, prefix) {
			switch {
			case l.na:
				return "N/A"
			case l.pass:
				return "PASS"
			}
			return "FAIL"
		}
	}
	t.Fatalf("no target starting %q in %+v", prefix, rep.targets)
	return ""
}

func TestEveryTargetPassesOnGoodReps(t *testing.T) {
	figs := []figures{goodRep(), goodRep(), goodRep()}
	rep := &report{}
	verdicts(rep, figs, true)
	if len(rep.targets) != 8 {
		t.Fatalf("want 8 targets, got %d: %+v", len(rep.targets), rep.targets)
	}
	for _, l := range rep.targets {
		if !l.pass || l.na {
			t.Errorf("%s: %s, want PASS", l.name, l.figure)
		}
	}
}

// The end-to-end verdict is the median of each rep's own ratio: here the
// ratios are 1.2, 0.75 and 1.03 (median 1.03, PASS), while the ratio of the
// medians (150 / 200 = 0.75) would fail. The baseline moves between reps on
// a shared machine; a rep's scheduler run is compared with its own baseline.
func TestEndToEndIsJudgedOnTheMedianOfPerRepRatios(t *testing.T) {
	reps := [][2]float64{{100, 120}, {200, 150}, {300, 310}}
	var figs []figures
	for _, r := range reps {
		f := goodRep()
		f.base, f.rest, f.gql = r[0], r[1], r[1]
		f.embedded = f.rest
		figs = append(figs, f)
	}
	if v := verdictOf(t, figs, true, "E2E"); v != "PASS" {
		t.Fatalf("E2E verdict %s, want PASS on the median of per-rep ratios", v)
	}
	figs[2].rest = 290 // ratios 1.2, 0.75, 0.97: median below 1.0
	if v := verdictOf(t, figs, true, "E2E"); v != "FAIL" {
		t.Fatalf("E2E verdict %s, want FAIL", v)
	}
}

// One bad rep does not fail a target and one good rep does not pass it.
func TestOneRepDoesNotDecide(t *testing.T) {
	bad := goodRep()
	bad.pickup[0] = 30 * time.Millisecond
	bad.batch = 5000
	bad.moderateP99 = time.Second
	bad.idleCPU["embedded"] = 5
	figs := []figures{goodRep(), bad, goodRep()}
	for _, name := range []string{"idle pickup", "batch intake", "p99 <= 50 ms", "idle process"} {
		if v := verdictOf(t, figs, true, name); v != "PASS" {
			t.Errorf("%s: %s with one bad rep of three, want PASS", name, v)
		}
	}
	figs = []figures{bad, goodRep(), bad}
	for _, name := range []string{"idle pickup", "batch intake", "p99 <= 50 ms", "idle process"} {
		if v := verdictOf(t, figs, true, name); v != "FAIL" {
			t.Errorf("%s: %s with two bad reps of three, want FAIL", name, v)
		}
	}
}

// Misses are summed over the reps: one missed event anywhere fails.
func TestFanOutMissesAddUp(t *testing.T) {
	figs := []figures{goodRep(), goodRep(), goodRep()}
	figs[1].fanoutMissed = 1
	if v := verdictOf(t, figs, true, "fan-out"); v != "FAIL" {
		t.Fatalf("fan-out verdict %s with a missed event, want FAIL", v)
	}
}

func TestQuickJudgesNothing(t *testing.T) {
	rep := &report{}
	verdicts(rep, []figures{goodRep()}, false)
	for _, l := range rep.targets {
		if !l.na {
			t.Errorf("%s judged in a quick run: %+v", l.name, l)
		}
	}
}

func TestEmbeddedRatioAndRSSNeedTheirRuns(t *testing.T) {
	f := goodRep()
	f.embedded, f.peakRSS = 0, 0
	for _, name := range []string{"embedded >=", "peak RSS"} {
		if v := verdictOf(t, []figures{f}, true, name); v != "N/A" {
			t.Errorf("%s: %s without its run, want N/A", name, v)
		}
	}
	f = goodRep()
	f.embedded = 0.7 * f.rest
	if v := verdictOf(t, []figures{f}, true, "embedded >="); v != "FAIL" {
		t.Errorf("embedded at 0.7x: %s, want FAIL", v)
	}
}
