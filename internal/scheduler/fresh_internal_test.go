package scheduler

import (
	"context"
	"strings"
	"testing"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/internal/domain"
)

// TestPickupTaskUsesTheCreatedRowOnce: the first pickup of a task this
// process created needs no read (a row changed behind the service's back
// shows which was used); the row is handed out once, and later pickups
// read the database.
func TestPickupTaskUsesTheCreatedRowOnce(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tk := f.tasks(t, 1)[0]
	// Change the row behind the service's back: a pickup that read the
	// database would see it.
	if err := f.svc.m.db.Task.UpdateOneID(tk.ID).SetPriority(1).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := f.svc.PickupTask(ctx, tk.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Priority != tk.Priority || got.Prompt != "hi" || got.Status != domain.StatusPending {
		t.Fatalf("first pickup: %+v, want the created row (priority %d)", got, tk.Priority)
	}
	if got == tk {
		t.Fatal("the cache handed out the creator's own *ent.Task, not a copy")
	}
	again, err := f.svc.PickupTask(ctx, tk.ID)
	if err != nil {
		t.Fatal(err)
	}
	if again.Priority != 1 {
		t.Fatalf("second pickup has priority %d, want the database's 1", again.Priority)
	}
}

// TestPickedUpStaleRowCannotStart: a task cancelled after it was cached
// cannot be started from the cached row: the fenced start reports a
// conflict and the task stays cancelled.
func TestPickedUpStaleRowCannotStart(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tk := f.tasks(t, 1)[0]
	// Cancelled by another process: this one's cache does not know.
	if err := f.svc.m.db.Task.UpdateOneID(tk.ID).SetStatus(domain.StatusCancelled).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	stale, err := f.svc.PickupTask(ctx, tk.ID)
	if err != nil || stale.Status != domain.StatusPending {
		t.Fatalf("pickup: %v %v, want the cached pending row", stale, err)
	}
	if _, _, err := f.svc.StartAttempt(ctx, stale, f.model.ID, "w"); CodeOf(err) != CodeConflict {
		t.Fatalf("start from a stale row: %v, want a conflict", err)
	}
	cur, err := f.svc.m.db.Task.Get(ctx, tk.ID)
	if err != nil || cur.Status != domain.StatusCancelled || cur.Attempts != 0 {
		t.Fatalf("task after the refused start: %+v %v", cur, err)
	}
}

// TestFreshKeepsOnlySmallNewRowsAndForgetsChangedOnes: a transition by
// this process drops the task's row; big inputs are not kept; the cache
// never holds more than freshMax rows, evicting the oldest.
func TestFreshKeepsOnlySmallNewRowsAndForgetsChangedOnes(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tk := f.tasks(t, 1)[0]
	if _, err := f.svc.CancelTask(ctx, tk.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.svc.m.fresh.take(tk.ID); ok {
		t.Fatal("a task this process cancelled is still cached")
	}
	big, err := f.svc.CreateTask(ctx, NewTask{ModelID: f.model.ID, Type: "text-generation", Input: strings.Repeat("x", freshMaxInput+1)})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.svc.m.fresh.take(big.ID); ok {
		t.Fatal("a task with an input over freshMaxInput was cached")
	}

	c := newFresh()
	rows := make([]*ent.Task, freshMax+10)
	for i := range rows {
		rows[i] = &ent.Task{ID: i + 1, Status: domain.StatusPending}
	}
	c.put(rows)
	if len(c.rows) != freshMax {
		t.Fatalf("cache holds %d rows, want at most %d", len(c.rows), freshMax)
	}
	if _, ok := c.take(1); ok {
		t.Fatal("the oldest row was not evicted")
	}
	if got, ok := c.take(freshMax + 10); !ok || got.ID != freshMax+10 {
		t.Fatal("the newest row is missing")
	}
	c.put([]*ent.Task{{ID: 99999, Status: domain.StatusRunning, Attempts: 1}})
	if _, ok := c.take(99999); ok {
		t.Fatal("a row that is not new (running, attempt 1) was cached")
	}
}
