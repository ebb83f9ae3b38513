package app_test

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/llmsched/llm-scheduler/internal/apptest"
)

// TestNoGoroutineLeftAfterShutdown starts a whole process (api and
// worker), runs a task through it, stops it, and finds no goroutine of
// its left: every background loop has an owner that stops it.
func TestNoGoroutineLeftAfterShutdown(t *testing.T) {
	before := goleak.IgnoreCurrent()
	// Cleanups run last registered first: this one runs after the
	// process and the test's storage are gone.
	t.Cleanup(func() { goleak.VerifyNone(t, append(apptest.LeakOptions(), before)...) })
	e := apptest.New(t, nil)
	m := e.Simulator("leak", 2, map[string]any{"latency_ms": 20, "output_tokens": 3})
	task := e.Submit(map[string]any{"model_id": m.ID, "type": "text-generation", "input": "hello"})
	e.WaitTask(task.ID, "completed", 20*time.Second)
	e.Stop()
}
