package jobs_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/jobs"
)

// TestFairShareStateIsBoundedByCallersWithWork: 200 callers (free-form
// labels, no auth) submit one task each, in all three priorities, to a
// model slow enough that a backlog builds. Once all have finished, the
// model's fair-share state in Redis holds no caller's tag (each was
// reached by its band's clock, or its band ran empty) and the clocks'
// hash only the bands' fields: it does not grow with the callers ever
// seen.
func TestFairShareStateIsBoundedByCallersWithWork(t *testing.T) {
	e := apptest.New(t, nil)
	ctx := context.Background()
	rdb := e.App.Broker.Client
	m := e.Simulator("fair-state", 2, map[string]any{"output_tokens": 1, "latency_ms": 50})
	const callers = 200
	ids := make([]int, callers)
	for i := range ids {
		ids[i] = e.Submit(map[string]any{"model_id": m.ID, "type": "text-generation", "input": "x",
			"priority": 1 + i%3, "caller": fmt.Sprintf("caller-%03d", i)}).ID
	}
	clocks, tags := jobs.FairShareKeys(e.App.Dispatcher, m.ID)
	peak, err := rdb.ZCard(ctx, tags).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if tk := e.WaitTask(id, "", 2*time.Minute); tk.Status != "completed" {
			t.Fatalf("task %d ended %s (%s)", id, tk.Status, tk.Error)
		}
	}
	fields, err := rdb.HGetAll(ctx, clocks).Result()
	if err != nil {
		t.Fatal(err)
	}
	left, err := rdb.ZRangeWithScores(ctx, tags, 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after %d callers: %d callers' tags (%d right after the submissions), clocks %v", callers, len(left), peak, fields)
	// At most the round robin's and the clocks' field per band.
	if len(fields) > 6 {
		t.Fatalf("the clocks' hash %s has %d fields, want at most 6: %v", clocks, len(fields), fields)
	}
	if len(left) > 3 {
		t.Fatalf("%d callers' tags are left in %s after all tasks finished, want at most 3: %v", len(left), tags, left[:min(len(left), 5)])
	}
}
