package jobs_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/llmsched/llm-scheduler/internal/app"
	"github.com/llmsched/llm-scheduler/internal/apptest"
)

// scheduleIn submits a task that should run d from now and checks that it
// is stored at once as pending, scheduled, with its run_at.
func scheduleIn(e *apptest.Env, modelID int, d time.Duration) apptest.Task {
	e.T.Helper()
	runAt := time.Now().Add(d).UTC()
	task := e.Submit(map[string]any{"model_id": modelID, "type": "text-generation", "input": "later",
		"run_at": runAt.Format(time.RFC3339Nano)})
	if task.Status != "pending" || task.PendingReason != "scheduled" || task.RunAt == nil || !task.RunAt.Equal(runAt) {
		e.T.Fatalf("scheduled task = status %s reason %q run_at %v, want pending / scheduled / %v",
			task.Status, task.PendingReason, task.RunAt, runAt)
	}
	return task
}

// checkStartedOnTime waits for the task to complete and checks that its
// only attempt started at or after run_at and within a second of it.
func checkStartedOnTime(e *apptest.Env, task apptest.Task) {
	e.T.Helper()
	got := e.WaitTask(task.ID, "completed", 30*time.Second)
	if got.Attempts != 1 || got.StartedAt == nil {
		e.T.Fatalf("task %d: %d attempts, started %v; want one attempt", task.ID, got.Attempts, got.StartedAt)
	}
	late := got.StartedAt.Sub(*task.RunAt)
	if late < 0 || late > time.Second {
		e.T.Fatalf("task %d started %s after its run_at %s, want within [0, 1s]", task.ID, late, task.RunAt.Format(time.RFC3339Nano))
	}
}

func TestScheduledTaskWaitsForRunAt(t *testing.T) {
	e := apptest.New(t, nil)
	m := e.Simulator("sched", 2, map[string]any{"output_tokens": 1})
	task := scheduleIn(e, m.ID, 2*time.Second)
	// Meanwhile other tasks of the model run at once.
	now := submit(e, m.ID, 2, "now")
	e.WaitTask(now.ID, "completed", 30*time.Second)
	if got := e.Task(task.ID); got.Status != "pending" || got.PendingReason != "scheduled" || got.PendingDetail == "" {
		t.Fatalf("before run_at: status %s reason %q detail %q, want pending / scheduled", got.Status, got.PendingReason, got.PendingDetail)
	}
	checkStartedOnTime(e, task)
}

func TestScheduledTaskDelaySecondsAndPastRunAt(t *testing.T) {
	e := apptest.New(t, nil)
	m := e.Simulator("delay", 2, map[string]any{"output_tokens": 1})
	before := time.Now()
	delayed := e.Submit(map[string]any{"model_id": m.ID, "type": "text-generation", "input": "x", "delay_seconds": 1})
	if delayed.PendingReason != "scheduled" || delayed.RunAt == nil || delayed.RunAt.Before(before.Add(time.Second)) {
		t.Fatalf("delay_seconds 1: reason %q run_at %v, want scheduled at >= %v", delayed.PendingReason, delayed.RunAt, before.Add(time.Second))
	}
	past := e.Submit(map[string]any{"model_id": m.ID, "type": "text-generation", "input": "x",
		"run_at": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)})
	if past.PendingReason == "scheduled" {
		t.Fatalf("a run_at in the past is scheduled, want it to run now")
	}
	e.WaitTask(past.ID, "completed", 30*time.Second)
	checkStartedOnTime(e, delayed)
}

func TestScheduledTaskSurvivesRedisFlush(t *testing.T) {
	sh := apptest.NewShared(t, nil)
	e := sh.Start(t, app.RoleAll)
	m := e.Simulator("sched-flush", 2, map[string]any{"output_tokens": 1})
	task := scheduleIn(e, m.ID, 2*time.Second)
	if err := sh.Redis.FlushDB(context.Background()).Err(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	checkStartedOnTime(e, task)
}

func TestScheduledTaskSurvivesRestartOfEveryProcess(t *testing.T) {
	sh := apptest.NewShared(t, nil)
	api := sh.Start(t, app.RoleAPI)
	worker := sh.Start(t, app.RoleWorker)
	m := api.Simulator("sched-restart", 2, map[string]any{"output_tokens": 1})
	task := scheduleIn(api, m.ID, 3*time.Second)
	worker.Stop()
	api.Stop()
	// New processes (embedded: with a new, empty Redis), two of each, all
	// scanning for due tasks: it runs once, on time.
	api = sh.Start(t, app.RoleAPI)
	sh.Start(t, app.RoleAPI)
	sh.Start(t, app.RoleWorker)
	sh.Start(t, app.RoleWorker)
	checkStartedOnTime(api, task)
}

func TestScheduledTaskCancelledNeverRuns(t *testing.T) {
	e := apptest.New(t, nil)
	m := e.Simulator("sched-cancel", 2, map[string]any{"output_tokens": 1})
	task := scheduleIn(e, m.ID, time.Second)
	if code := e.Do("DELETE", fmt.Sprintf("/api/v1/tasks/%d", task.ID), nil, nil); code != http.StatusOK {
		t.Fatalf("cancel: status %d", code)
	}
	// Past its run_at and a few of the scanner's looks.
	time.Sleep(time.Until(task.RunAt.Add(1500 * time.Millisecond)))
	if got := e.Task(task.ID); got.Status != "cancelled" || got.Attempts != 0 {
		t.Fatalf("cancelled scheduled task: status %s, %d attempts; want cancelled, never run", got.Status, got.Attempts)
	}
	// Retried by hand, it runs now.
	if code := e.Do("POST", fmt.Sprintf("/api/v1/tasks/%d/retry", task.ID), nil, nil); code != http.StatusOK {
		t.Fatalf("retry: status %d", code)
	}
	e.WaitTask(task.ID, "completed", 30*time.Second)
}

func TestScheduleValidation(t *testing.T) {
	e := apptest.New(t, nil)
	m := e.Simulator("sched-bad", 1, map[string]any{"output_tokens": 1})
	for _, tc := range []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"run_at not a time", map[string]any{"run_at": "tomorrow"}, "run_at"},
		{"run_at too far ahead", map[string]any{"run_at": time.Now().Add(31 * 24 * time.Hour).UTC().Format(time.RFC3339)}, "run_at"},
		{"delay too long", map[string]any{"delay_seconds": 31 * 24 * 3600}, "delay_seconds"},
		{"negative delay", map[string]any{"delay_seconds": -1}, "delay_seconds"},
		{"both", map[string]any{"delay_seconds": 5, "run_at": time.Now().UTC().Format(time.RFC3339)}, "delay_seconds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := map[string]any{"model_id": m.ID, "type": "text-generation", "input": "x"}
			for k, v := range tc.body {
				body[k] = v
			}
			var eb apptest.ErrorBody
			if code := e.Do("POST", "/api/v1/tasks", body, &eb); code != http.StatusBadRequest || eb.Error.Field != tc.field {
				t.Fatalf("status %d field %q (%s), want 400 naming %s", code, eb.Error.Field, eb.Error.Message, tc.field)
			}
		})
	}
	if n := e.CountTasks(); n != 0 {
		t.Fatalf("%d tasks written by refused requests, want 0", n)
	}
}
