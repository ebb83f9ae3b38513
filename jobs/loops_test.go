package jobs_test

import (
	"testing"
	"time"

	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/jobs"
)

// TestReconcilerStopEndsItsGoroutine: a reconciler started beside the
// process's own runs in a goroutine of its own until Stop, which returns
// once that goroutine ended.
func TestReconcilerStopEndsItsGoroutine(t *testing.T) {
	e := apptest.New(t, nil)
	a := e.App
	r := jobs.NewReconciler(a.Store.Client, a.Service.Lifecycle, a.Dispatcher, a.Broker.Prefix, 50*time.Millisecond, time.Second, time.Second, a.Log)
	apptest.CheckStopEndsGoroutine(t, r, "jobs.(*Reconciler).run(")
}

// TestDueScannerStopEndsItsGoroutine: the same for a due scanner.
func TestDueScannerStopEndsItsGoroutine(t *testing.T) {
	e := apptest.New(t, nil)
	a := e.App
	d := jobs.NewDueScanner(a.Service.Tasks, 50*time.Millisecond, a.Log)
	apptest.CheckStopEndsGoroutine(t, d, "jobs.(*DueScanner).run(")
}
