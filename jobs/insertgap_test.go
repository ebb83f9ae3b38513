package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/internal/domain"
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
