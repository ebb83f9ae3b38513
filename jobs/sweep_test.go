package jobs_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/llmsched/llm-scheduler/ent/task"
	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/jobs"
)

// TestReconcilerSweepsTheBacklogInBoundedRounds: pending tasks that Redis
// lost long after they last changed are found by the sweep, a bounded
// number per round (a round never walks the whole backlog), and every one
// of them within backlog / chunk rounds; a sweep rests between its pages.
func TestReconcilerSweepsTheBacklogInBoundedRounds(t *testing.T) {
	// A long interval: only the round at start runs by itself.
	e := apptest.New(t, func(c *config.Config) { c.Queue.ReconcileInterval = config.Duration(time.Minute) })
	ctx := context.Background()
	m := e.Simulator("sweep", 1, map[string]any{"latency_ms": 0})
	if code := e.Do("PUT", "/api/v1/models/"+strconv.Itoa(m.ID)+"/status", map[string]any{"status": "offline"}, nil); code != http.StatusOK {
		t.Fatalf("set model offline: status %d", code)
	}
	const n, chunk = 30, 10
	for range n {
		submit(e, m.ID, 2, "parked")
	}
	// The tasks last changed an hour ago (outside the reconciler's window
	// of recent changes), and Redis lost them.
	if _, err := e.App.Store.Client.Task.Update().Where(task.ModelID(m.ID)).
		SetUpdatedAt(time.Now().Add(-time.Hour)).Save(ctx); err != nil {
		t.Fatal(err)
	}
	keys := jobs.ParkedKeys(e.App.Dispatcher, m.ID)
	if err := e.Shared.Redis.Del(ctx, keys[0]).Err(); err != nil {
		t.Fatal(err)
	}
	if err := e.Shared.Redis.Del(ctx, keys[1]).Err(); err != nil {
		t.Fatal(err)
	}
	jobs.SetSweep(e.App.Reconciler, chunk)
	jobs.SetWalkPage(t, 4) // a sweep of 10: pages of 4, 4 and 2
	rests := jobs.RecordSweepRests(e.App.Reconciler)
	for round := 1; round <= n/chunk; round++ {
		if err := e.App.Reconciler.Once(ctx); err != nil {
			t.Fatal(err)
		}
		parked := parkedIn(t, e, keys)
		if want := int64(round * chunk); parked != want {
			t.Fatalf("after round %d: %d tasks parked again, want %d", round, parked, want)
		}
		// A rest after each page but the last, as long as the page took.
		if got := rests(); len(got) != 2*round || got[len(got)-1] <= 0 || got[len(got)-2] <= 0 {
			t.Fatalf("after round %d the sweep rested %v, want twice a round, each as long as a page took", round, got)
		}
	}
}

// TestReconcilerWindowPagesThroughTies: pending tasks that changed in the
// reconciler's window of recent changes and that Redis lost are all found
// in one round, read a page at a time by (updated_at, id), when many share
// one updated_at across page boundaries.
func TestReconcilerWindowPagesThroughTies(t *testing.T) {
	e := apptest.New(t, func(c *config.Config) { c.Queue.ReconcileInterval = config.Duration(time.Minute) })
	ctx := context.Background()
	m := e.Simulator("window", 1, map[string]any{"latency_ms": 0})
	if code := e.Do("PUT", "/api/v1/models/"+strconv.Itoa(m.ID)+"/status", map[string]any{"status": "offline"}, nil); code != http.StatusOK {
		t.Fatalf("set model offline: status %d", code)
	}
	const n = 23
	for range n {
		submit(e, m.ID, 2, "parked")
	}
	ids, err := e.App.Store.Client.Task.Query().Where(task.ModelID(m.ID)).IDs(ctx)
	if err != nil || len(ids) != n {
		t.Fatalf("tasks: %d, %v", len(ids), err)
	}
	// The window of a round with a one-minute interval ends two minutes
	// ago: the tasks changed 150 s ago, 9 of them at one instant and 14 at
	// another, so that pages of 5 split both groups.
	at := time.Now().Add(-150 * time.Second).Truncate(time.Millisecond)
	for i, id := range ids {
		when := at
		if i >= 9 {
			when = at.Add(time.Millisecond)
		}
		if err := e.App.Store.Client.Task.UpdateOneID(id).SetUpdatedAt(when).Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	keys := jobs.ParkedKeys(e.App.Dispatcher, m.ID)
	for _, k := range keys {
		if err := e.Shared.Redis.Del(ctx, k).Err(); err != nil {
			t.Fatal(err)
		}
	}
	jobs.SetWalkPage(t, 5)
	jobs.SetSweep(e.App.Reconciler, 1) // the sweep finds one task a round at most
	if err := e.App.Reconciler.Once(ctx); err != nil {
		t.Fatal(err)
	}
	parked := parkedIn(t, e, keys)
	if parked != n {
		t.Fatalf("after one round %d of %d tasks parked again; the window's pages skipped some", parked, n)
	}
}

// parkedIn counts the tasks parked under a model's parked-queue keys.
func parkedIn(t *testing.T, e *apptest.Env, keys []string) int64 {
	t.Helper()
	var parked int64
	for _, k := range keys {
		c, err := e.Shared.Redis.ZCard(context.Background(), k).Result()
		if err != nil {
			t.Fatal(err)
		}
		parked += c
	}
	return parked
}
