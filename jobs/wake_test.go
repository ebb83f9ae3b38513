package jobs_test

import (
	"testing"
	"time"

	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/jobs"
)

// TestIdleWorkerIsWokenBySubmission: an idle worker stops polling Redis
// (its gate answers asynq's dequeue calls), and a submission wakes it: with
// an idle check interval of a minute, only the wake-up can start the task
// within the test's wait.
func TestIdleWorkerIsWokenBySubmission(t *testing.T) {
	e := apptest.New(t, func(c *config.Config) {
		c.Queue.IdleCheckInterval = config.Duration(time.Minute)
	})
	w := e.App.Worker
	if jobs.GateAnswered(w) < 0 {
		t.Fatal("the worker has no idle gate: wake-ups are off")
	}
	m := e.Simulator("wake", 2, map[string]any{"latency_ms": 0})
	// A quiet gate answers asynq's poller once per quietWait (1 s).
	deadline := time.Now().Add(20 * time.Second)
	for jobs.GateAnswered(w) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the worker never went quiet")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := range 3 {
		// Let it go quiet again between tasks.
		quiet := jobs.GateAnswered(w)
		for jobs.GateAnswered(w) < quiet+2 {
			time.Sleep(5 * time.Millisecond)
		}
		tk := submit(e, m.ID, 1+i, "wake me")
		e.WaitTask(tk.ID, "completed", 20*time.Second)
	}
}

// TestModelCreatedWhileWorkersAreQuietIsWoken: a model created after the
// worker went quiet gets its first task started by a wake-up too. (On
// Redis Cluster each model has its own wake key, and a quiet worker has set
// only those of the models it knew.)
func TestModelCreatedWhileWorkersAreQuietIsWoken(t *testing.T) {
	e := apptest.New(t, func(c *config.Config) {
		c.Queue.IdleCheckInterval = config.Duration(time.Minute)
	})
	w := e.App.Worker
	if jobs.GateAnswered(w) < 0 {
		t.Fatal("the worker has no idle gate: wake-ups are off")
	}
	deadline := time.Now().Add(20 * time.Second)
	for jobs.GateAnswered(w) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the worker never went quiet")
		}
		time.Sleep(10 * time.Millisecond)
	}
	m := e.Simulator("late", 2, map[string]any{"latency_ms": 0})
	tk := submit(e, m.ID, 2, "wake me")
	e.WaitTask(tk.ID, "completed", 20*time.Second)
}
