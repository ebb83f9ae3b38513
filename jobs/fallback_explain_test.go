package jobs_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/internal/config"
)

// TestPendingOnFallbackExplained: a task whose retries on its own model are
// spent waits on its fallback, and its diagnosis names the fallback's
// state, not "not queued".
func TestPendingOnFallbackExplained(t *testing.T) {
	e := apptest.New(t, nil)
	fb := e.Simulator("fallback-busy", 1, map[string]any{"latency_ms": 30000})
	blocker := submit(e, fb.ID, 2, "occupies the fallback's only slot")
	e.WaitTask(blocker.ID, "running", 30*time.Second)

	var created struct{ Data apptest.Model }
	body := map[string]any{"name": "primary-down", "type": "simulator", "max_workers": 1,
		"config": map[string]any{"fail_first_n": 100}, "fallbacks": []int{fb.ID}}
	if code := e.Do("POST", "/api/v1/models", body, &created); code != http.StatusCreated {
		t.Fatalf("create primary: %d", code)
	}
	task := e.Submit(map[string]any{"model_id": created.Data.ID, "type": "text-generation", "input": "x", "max_retries": 0})
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := e.Task(task.ID)
		if got.Attempts == 1 && got.Status == "pending" && got.PendingReason == "model_at_capacity" {
			if got.QueuePosition != 1 {
				t.Fatalf("queue position on the fallback = %d, want 1", got.QueuePosition)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("task is %s after %d attempts, reason %q (%s); want pending on the busy fallback",
				got.Status, got.Attempts, got.PendingReason, got.PendingDetail)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code := e.Do("DELETE", fmt.Sprintf("/api/v1/tasks/%d", blocker.ID), nil, nil); code != http.StatusOK {
		t.Fatalf("cancel blocker: %d", code)
	}
	// The freed slot goes to it: its second attempt runs on the fallback.
	running := e.WaitTask(task.ID, "running", 30*time.Second)
	if n := len(running.AttemptHistory); n != 2 || running.AttemptHistory[1].ModelID != fb.ID {
		t.Fatalf("attempts = %+v, want the second on the fallback", running.AttemptHistory)
	}
}

// TestPendingReasonAcrossAFallbackMove: a failed attempt whose task moves
// on to its fallback at once (no delay) reads retry_backoff from the
// failure until the next attempt is queued for a worker, never not_queued
// while asynq's retry timer holds it (up to a second, with
// queue.retry_delay 60 s).
func TestPendingReasonAcrossAFallbackMove(t *testing.T) {
	e := apptest.New(t, func(c *config.Config) {
		c.Queue.RetryDelay = config.Duration(60 * time.Second)
		c.Queue.MaxRetryDelay = config.Duration(time.Hour)
	})
	fb := e.Simulator("fallback", 1, map[string]any{"latency_ms": 30000})
	var created struct{ Data apptest.Model }
	body := map[string]any{"name": "primary-failing", "type": "simulator", "max_workers": 1,
		"config": map[string]any{"fail_first_n": 100}, "fallbacks": []int{fb.ID}}
	if code := e.Do("POST", "/api/v1/models", body, &created); code != http.StatusCreated {
		t.Fatalf("create primary: %d", code)
	}
	task := e.Submit(map[string]any{"model_id": created.Data.ID, "type": "text-generation", "input": "x", "max_retries": 0})
	var seen []string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the task never ran on its fallback; reasons seen %v", seen)
		}
		got := e.Task(task.ID)
		if got.Attempts >= 2 {
			break
		}
		if got.Status == "pending" && got.Attempts == 1 && (len(seen) == 0 || seen[len(seen)-1] != got.PendingReason) {
			seen = append(seen, got.PendingReason)
		}
	}
	if len(seen) == 0 {
		t.Fatal("never saw the task pending between its attempts")
	}
	if seen[0] != "retry_backoff" {
		t.Errorf("first pending reason after the failed attempt %q, want retry_backoff (all: %v)", seen[0], seen)
	}
	for _, r := range seen {
		if r == "not_queued" || r == "" {
			t.Fatalf("pending reasons between the attempts %v: %q while the retry timer holds the task", seen, r)
		}
	}
}
