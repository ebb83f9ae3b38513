package chaos

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSIGKILLedWorkerTaskRunsElsewhere: a worker killed with SIGKILL in the
// middle of a task; once its model slot lease expires the task runs again
// on another worker. The attempt history shows the lost attempt (on the
// killed worker) and one succeeded attempt (on the survivor), and the task
// completed once.
func TestSIGKILLedWorkerTaskRunsElsewhere(t *testing.T) {
	c := NewCluster(t, Settings{LeaseTTL: 2 * time.Second, ShutdownGrace: 2 * time.Second, WorkerCapacity: 4})
	db := c.Maria.DB(t, c.DBName)
	api := c.Start("api")
	victim := c.Start("worker")
	model := createModel(t, api, "slow", 1, map[string]any{"latency_ms": 2500, "output_tokens": 2})
	id := submit(t, api, model, "survive a kill")
	waitStatus(t, db, id, "running", 30*time.Second)
	survivor := c.Start("worker")
	victim.Kill()
	waitStatus(t, db, id, "completed", 90*time.Second)

	as := attempts(t, db, "WHERE task_id = ?", id)
	if len(as) != 2 {
		t.Fatalf("attempts = %+v, want 2 (lost, succeeded)", as)
	}
	if as[0].Status != "lost" || as[0].Worker != victim.Worker || as[0].Finished == nil {
		t.Fatalf("first attempt = %+v, want lost on the killed worker %s, with an end", as[0], victim.Worker)
	}
	if as[1].Status != "succeeded" || as[1].Worker != survivor.Worker {
		t.Fatalf("second attempt = %+v, want succeeded on %s", as[1], survivor.Worker)
	}
	// The reconciler took it over (its message names the lease), not
	// asynq's recoverer a minute or two later.
	if !strings.Contains(as[0].Error, "stopped renewing its model slot lease") {
		t.Fatalf("lost attempt error = %q, want the reconciler's takeover", as[0].Error)
	}
}

// TestMaxWorkersAcrossWorkerProcesses: three worker processes (the real
// binary, separate OS processes), each running one task at a time, share a
// model with max_workers 2. Attempts run on at least two of the processes,
// two at once, never three. Breakages caught: a limit kept per process
// rather than in Redis, or max_workers+1 (three at once); a single worker
// process (the peak of two needs two processes, each runs one at a time).
func TestMaxWorkersAcrossWorkerProcesses(t *testing.T) {
	// worker.max_workers 2 in the file (the api checks a model's
	// max_workers against it), 1 in each worker process.
	c := NewCluster(t, Settings{LeaseTTL: 4 * time.Second, ShutdownGrace: 2 * time.Second, WorkerCapacity: 2})
	db := c.Maria.DB(t, c.DBName)
	api := c.Start("api")
	for range 3 {
		c.Start("worker", "WORKER_MAX_WORKERS=1")
	}
	model := createModel(t, api, "pair", 2, map[string]any{"latency_ms": 300, "output_tokens": 2})
	var ids []int
	for i := range 12 {
		ids = append(ids, submit(t, api, model, fmt.Sprintf("slow %d", i)))
	}
	for _, id := range ids {
		waitStatus(t, db, id, "completed", 90*time.Second)
	}
	as := attempts(t, db, "WHERE model_id = ?", model)
	if len(as) != len(ids) {
		t.Fatalf("got %d attempts, want %d: %+v", len(as), len(ids), as)
	}
	workers := map[string]int{}
	for _, a := range as {
		workers[a.Worker]++
	}
	if len(workers) < 2 {
		t.Fatalf("attempts ran on %d worker process(es) %v, want at least 2", len(workers), workers)
	}
	switch peak := peakPerModel(as, nil)[model]; {
	case peak > 2:
		t.Fatalf("%d attempts ran at once across the processes, max_workers is 2", peak)
	case peak < 2:
		t.Fatalf("only %d attempt ran at a time; the two slots were not both used", peak)
	}
	t.Logf("attempts per worker process: %v", workers)
}

// TestSIGTERMDrainsAndHandsBack runs a real process of role all: after
// SIGTERM its API refuses submissions with 503 while the running tasks get
// server.shutdown_grace; the one that fits completes, the other is handed
// back (a lost "interrupted" attempt) and completed later by another
// worker. The process exits 0.
func TestSIGTERMDrainsAndHandsBack(t *testing.T) {
	c := NewCluster(t, Settings{LeaseTTL: 3 * time.Second, ShutdownGrace: 2 * time.Second, WorkerCapacity: 4})
	db := c.Maria.DB(t, c.DBName)
	api := c.Start("api")
	all := c.Start("all")
	fastModel := createModel(t, api, "fast", 1, map[string]any{"latency_ms": 1000, "output_tokens": 1})
	slowModel := createModel(t, api, "slow", 1, map[string]any{"latency_ms": 8000, "output_tokens": 1})
	fast := submit(t, all, fastModel, "fits in the grace period")
	slow := submit(t, all, slowModel, "outlives the grace period")
	waitStatus(t, db, fast, "running", 30*time.Second)
	waitStatus(t, db, slow, "running", 30*time.Second)

	all.Term()
	// Until the signal is handled a submission is still taken (and must
	// then complete like any other); after, it is refused with 503.
	var accepted []int
	for {
		var out struct {
			Data  struct{ ID int }      `json:"data"`
			Error struct{ Code string } `json:"error"`
		}
		code, err := call(context.Background(), "POST", all.URL+"/api/v1/tasks",
			map[string]any{"model_id": fastModel, "type": "text-generation", "input": fmt.Sprintf("late %d", len(accepted))}, &out)
		if err != nil {
			t.Fatalf("submission during shutdown: %v (want 503 while the grace period runs)", err)
		}
		if code == http.StatusServiceUnavailable {
			if out.Error.Code != "UNAVAILABLE" {
				t.Fatalf("503 with code %q, want UNAVAILABLE", out.Error.Code)
			}
			break
		}
		if code != http.StatusCreated {
			t.Fatalf("submission during shutdown: status %d", code)
		}
		accepted = append(accepted, out.Data.ID)
	}
	if err := all.Wait(60 * time.Second); err != nil {
		t.Fatalf("process did not exit cleanly after SIGTERM: %v", err)
	}
	if got := taskStatus(t, db, fast); got != "completed" {
		t.Fatalf("task that fits in the grace period is %s, want completed", got)
	}
	if got := taskStatus(t, db, slow); got != "pending" {
		t.Fatalf("task running past the grace period is %s, want pending (handed back)", got)
	}
	as := attempts(t, db, "WHERE task_id = ?", slow)
	if len(as) != 1 || as[0].Status != "lost" || as[0].ErrorKind != "interrupted" {
		t.Fatalf("attempts of the handed-back task = %+v, want one lost (interrupted)", as)
	}

	c.Start("worker")
	for _, id := range append([]int{slow}, accepted...) {
		waitStatus(t, db, id, "completed", 60*time.Second)
	}
	var succeeded int
	if err := db.QueryRow("SELECT COUNT(*) FROM attempts WHERE task_id = ? AND status = 'succeeded'", slow).Scan(&succeeded); err != nil {
		t.Fatal(err)
	}
	if succeeded != 1 {
		t.Fatalf("%d succeeded attempts of the handed-back task, want 1", succeeded)
	}
}
