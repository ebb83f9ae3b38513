package jobs_test

import (
	"testing"
	"time"
)

// TestARunningAttemptKeepsItsSlotPastTheLease: an attempt that runs for
// several lease TTLs keeps its model's only slot, renewed by the worker's
// heartbeats, so a task submitted meanwhile waits for it. Breakage
// caught: a worker that stops renewing (the lease expires after 1s and
// the next slot script hands the slot to the waiting task, which then
// runs beside the first on a model with max_workers 1).
func TestARunningAttemptKeepsItsSlotPastTheLease(t *testing.T) {
	const leaseTTL = time.Second
	e, m, first := runningOnOneSlot(t, leaseTTL, 4*leaseTTL, "runs for four lease TTLs")
	// Past the lease TTL: without renewals the lease has expired by now.
	time.Sleep(2 * leaseTTL)
	second := submit(e, m.ID, 2, "waits for the slot")
	for {
		// The second is read first: if it has left pending and the first
		// still runs after that, both held the one slot at once.
		s := e.Task(second.ID)
		f := e.Task(first.ID)
		if f.Status == "completed" {
			break
		}
		if f.Status != "running" {
			t.Fatalf("first task is %s, want running then completed", f.Status)
		}
		if s.Status != "pending" {
			t.Fatalf("second task is %s while the first still runs: the first attempt's slot lease was not renewed", s.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.WaitTask(second.ID, "completed", 30*time.Second)
}
