package jobs_test

import (
	"strings"
	"testing"
	"time"

	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/jobs"
)

const gateOff = "idle gate off"

// TestWorkerSelfTestRecognisesAsynqDequeue: at start a worker checks on
// its Redis (miniredis, or the real Redis with LLMSCHED_TEST_BACKEND=mysql)
// that its idle gate recognises asynq's dequeue call; with the asynq this
// is built with it does, so the gate stays on and nothing is logged.
func TestWorkerSelfTestRecognisesAsynqDequeue(t *testing.T) {
	e := apptest.New(t, nil)
	w := e.App.Worker
	if jobs.GateAnswered(w) < 0 {
		t.Fatalf("the worker's self-test turned the idle gate off; its log:\n%s", e.Logs.String())
	}
	if got, want := jobs.PollInterval(w), jobs.GatedPoll; got != want {
		t.Fatalf("gated worker's asynq sleeps %s between polls, want %s (the gate paces it)", got, want)
	}
	if strings.Contains(e.Logs.String(), gateOff) {
		t.Fatalf("the worker logged %q with the gate on:\n%s", gateOff, e.Logs.String())
	}
}

// TestUnrecognisedDequeueFallsBackToPolling: when the gate does not
// recognise asynq's dequeue call (as after an asynq upgrade that changed
// it), the worker logs one warning naming the asynq version, runs without
// the gate, polls every queue.poll_interval, and still runs tasks.
func TestUnrecognisedDequeueFallsBackToPolling(t *testing.T) {
	jobs.BreakDequeueRecognition(t)
	e := apptest.New(t, nil)
	w := e.App.Worker
	logs := e.Logs.String()
	if n := strings.Count(logs, gateOff); n != 1 {
		t.Fatalf("the worker logged %q %d times, want once:\n%s", gateOff, n, logs)
	}
	for _, want := range []string{"asynq=", "verified_with=v0.26.0", "jobs/wake.go"} {
		if !strings.Contains(logs, want) {
			t.Fatalf("the warning does not name %q:\n%s", want, logs)
		}
	}
	if jobs.GateAnswered(w) >= 0 {
		t.Fatal("the worker kept its idle gate although the gate does not recognise asynq's dequeue call")
	}
	if got, want := jobs.PollInterval(w), e.App.Config.Queue.PollInterval.D(); got != want {
		t.Fatalf("without the gate the worker polls every %s, want queue.poll_interval %s", got, want)
	}
	m := e.Simulator("polled", 2, map[string]any{"latency_ms": 0})
	for i := range 3 {
		tk := submit(e, m.ID, 1+i, "picked up by polling")
		e.WaitTask(tk.ID, "completed", 30*time.Second)
	}
}
