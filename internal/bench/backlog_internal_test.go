package bench

import (
	"strings"
	"testing"
	"time"
)

// pickupOf is a rep of 200 idle pickups: 195 at p50 and 5 at slow, so
// that slow is the rep's p99.
func pickupOf(p50, slow time.Duration) latencies {
	lat := make(latencies, 0, 200)
	for range 195 {
		lat = append(lat, p50)
	}
	for range 5 {
		lat = append(lat, slow)
	}
	return lat
}

func backlogVerdict(t *testing.T, full []latencies) (pass bool, figure string) {
	t.Helper()
	empty := &backlogSnapshot{intake: 1000, rss: 100, pages: map[string]latencies{}}
	for range 3 {
		empty.pickups = append(empty.pickups, pickupOf(4*time.Millisecond, 8*time.Millisecond))
	}
	rep := &report{}
	backlogTargets(rep, empty, &backlogSnapshot{intake: 1000, rss: 100, pages: map[string]latencies{}, pickups: full})
	for _, tl := range rep.targets {
		if strings.HasPrefix(tl.name, "backlog: pickup") {
			return tl.pass, tl.figure
		}
	}
	t.Fatal("no pickup target reported")
	return false, ""
}

// The backlog's pickup target is judged on the median of the per-rep
// ratios: one slow rep of three does not fail it, two do.
func TestBacklogPickupIsJudgedOnTheMedianOfReps(t *testing.T) {
	good, slow := pickupOf(4*time.Millisecond, 9*time.Millisecond), pickupOf(4*time.Millisecond, 20*time.Millisecond)
	if pass, fig := backlogVerdict(t, []latencies{good, slow, good}); !pass {
		t.Errorf("one slow rep of three failed the target: %s", fig)
	}
	if pass, fig := backlogVerdict(t, []latencies{slow, good, slow}); pass {
		t.Errorf("two slow reps of three passed the target: %s", fig)
	}
	if pass, fig := backlogVerdict(t, nil); pass {
		t.Errorf("no reps passed the target: %s", fig)
	}
}
