package jobs_test

import (
	"context"
	"testing"

	"github.com/llmsched/llm-scheduler/internal/app"
	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/jobs"
)

// TestStartedWorkerIsCountedAtOnce: once Start returns, the health check
// counts the worker (asynq writes its server record in the background).
func TestStartedWorkerIsCountedAtOnce(t *testing.T) {
	e := apptest.NewShared(t, nil).Start(t, app.RoleAPI)
	w := jobs.NewWorker(e.App.Broker, e.App.Service, e.App.Dispatcher, e.App.Bus, e.App.Config, e.App.Log, jobs.Hooks{})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
	if n, err := e.App.Dispatcher.WorkerCount(context.Background()); err != nil || n < 1 {
		t.Fatalf("worker count right after Start = %d (err %v), want at least 1", n, err)
	}
}
