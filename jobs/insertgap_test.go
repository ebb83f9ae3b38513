package jobs_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/jobs"
)

// TestReconcilerAdmitsTaskNeverEnqueued covers the gap between the
// database insert and the enqueue (a process that died in between): a
// pending task written straight to the database, never handed to Redis,
// is found by the reconciler and completes.
func TestReconcilerAdmitsTaskNeverEnqueued(t *testing.T) {
	e := apptest.New(t, nil)
	m := e.Simulator("gap", 1, map[string]any{"latency_ms": 5, "output_tokens": 2})
	ctx := context.Background()
	row, err := e.App.Store.Client.Task.Create().
		SetModelID(m.ID).SetType(domain.TypeTextGeneration).SetPrompt("inserted, never enqueued").
		SetPriority(int(domain.PriorityMedium)).SetMaxRetries(0).SetStatus(domain.StatusPending).
		Save(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := e.WaitTask(row.ID, "completed", 30*time.Second)
	if got.Attempts != 1 || len(got.AttemptHistory) != 1 || got.AttemptHistory[0].Status != "succeeded" {
		t.Fatalf("task = %s after %d attempts %+v, want completed by one succeeded attempt", got.Status, got.Attempts, got.AttemptHistory)
	}
}

// TestReconcilerReadmitsTaskAsItWasSubmitted: a parked task that Redis lost
// is re-admitted with what its fair share is made of (its caller), not
// only its id and priority: the reconciler reads a few columns of the
// tasks it looks at and the whole row of those it re-admits.
func TestReconcilerReadmitsTaskAsItWasSubmitted(t *testing.T) {
	e := apptest.New(t, func(c *config.Config) { c.Queue.ReconcileInterval = config.Duration(200 * time.Millisecond) })
	m := e.Simulator("lost-parked", 1, map[string]any{"latency_ms": 1500, "output_tokens": 1})
	ctx := context.Background()
	rdb := e.App.Broker.Client
	busy := e.Submit(map[string]any{"model_id": m.ID, "type": "text-generation", "input": "holds the slot"})
	e.WaitTask(busy.ID, "running", 10*time.Second)
	parked := e.Submit(map[string]any{"model_id": m.ID, "type": "text-generation", "input": "waits",
		"caller": "team-lost"})
	_, tags := jobs.FairShareKeys(e.App.Dispatcher, m.ID)
	member := func() (string, error) {
		all, err := rdb.ZRange(ctx, tags, 0, -1).Result()
		for _, s := range all {
			if strings.Contains(s, "team-lost") {
				return s, err
			}
		}
		return "", err
	}
	if s, err := member(); err != nil || s == "" {
		t.Fatalf("fair-share tags %s hold no tag of caller team-lost after the submission (err %v)", tags, err)
	}
	// Redis loses the parked task and its caller's tag.
	for _, k := range jobs.ParkedKeys(e.App.Dispatcher, m.ID) {
		if err := rdb.ZRem(ctx, k, strconv.Itoa(parked.ID)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := rdb.Del(ctx, tags).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := member()
		if err != nil {
			t.Fatal(err)
		}
		if s != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the reconciler never re-admitted task %d as caller team-lost's", parked.ID)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := e.WaitTask(parked.ID, "completed", 30*time.Second); got.Attempts != 1 {
		t.Fatalf("re-admitted task ran %d attempts, want 1", got.Attempts)
	}
}
