package scheduler_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/llmsched/llm-scheduler/internal/app"
	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/scheduler"
)

// TestConcurrentLifecyclesKeepEveryTaskItsOwnRow runs many submissions,
// starts and completions at once, as a busy API and worker do, so that
// they share batches (multi-row INSERT, fenced multi-row UPDATEs with
// per-row CASE values), on the configured backend (MySQL in CI's second
// pass). Every task must keep its own input, output and token counts: a
// batch that handed out ids or values in the wrong order would mix them.
func TestConcurrentLifecyclesKeepEveryTaskItsOwnRow(t *testing.T) {
	sh := apptest.NewShared(t, nil)
	e := sh.Start(t, app.RoleAPI) // no worker: the test plays it
	m := e.Simulator("batch", 50, map[string]any{"latency_ms": 0})
	svc := e.App.Service
	ctx := context.Background()

	const n = 64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			in := fmt.Sprintf("input-%d", i)
			tk, err := svc.CreateTask(ctx, scheduler.NewTask{ModelID: m.ID, Type: "text-generation", Input: in})
			if err != nil {
				errs <- err
				return
			}
			if tk.Prompt != in {
				errs <- fmt.Errorf("created task %d holds %q, want %q", tk.ID, tk.Prompt, in)
				return
			}
			got, err := svc.GetTask(ctx, tk.ID)
			if err != nil || got.Prompt != in || got.Status != domain.StatusPending {
				errs <- fmt.Errorf("read task %d: %v %q %s, want %q pending", tk.ID, err, got.Prompt, got.Status, in)
				return
			}
			running, att, err := svc.StartAttempt(ctx, got, m.ID, "test-worker")
			if err != nil {
				errs <- fmt.Errorf("start task %d: %w", tk.ID, err)
				return
			}
			if att.TaskID != tk.ID || running.Attempts != 1 {
				errs <- fmt.Errorf("task %d started as attempt %d of task %d", tk.ID, running.Attempts, att.TaskID)
				return
			}
			out := scheduler.Outcome{Output: "output-of-" + in, PromptTokens: i, CompletionTokens: 2 * i}
			if err := svc.CompleteAttempt(ctx, running, att, out); err != nil {
				errs <- fmt.Errorf("complete task %d: %w", tk.ID, err)
				return
			}
			done, err := svc.GetTask(ctx, tk.ID)
			if err != nil || done.Status != domain.StatusCompleted || done.Output != out.Output ||
				done.PromptTokens != i || done.CompletionTokens != 2*i || done.TotalTokens != 3*i {
				errs <- fmt.Errorf("task %d after completion: %v %s %q tokens %d/%d/%d, want %q %d/%d",
					tk.ID, err, done.Status, done.Output, done.PromptTokens, done.CompletionTokens, done.TotalTokens, out.Output, i, 2*i)
				return
			}
			as, err := svc.Attempts(ctx, tk.ID)
			if err != nil || len(as) != 1 || as[0].Status != domain.AttemptSucceeded || as[0].PromptTokens != i || as[0].CompletionTokens != 2*i {
				errs <- fmt.Errorf("attempts of task %d: %v %+v", tk.ID, err, as)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
