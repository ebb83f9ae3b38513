package scheduler_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/internal/events"
	"github.com/llmsched/llm-scheduler/internal/scheduler"
	"github.com/llmsched/llm-scheduler/internal/store"
)

// These benchmarks cover the domain service's hot paths on the embedded
// database, without Redis: a no-op dispatcher and a discarding bus. They
// count the service's own work (validation, backpressure, queries) so a
// regression in it shows up in review; `llm-scheduler bench` measures the
// whole system. Run: go test -run '^$' -bench . ./internal/scheduler/

type nopDispatcher struct{}

func (nopDispatcher) Admit(context.Context, *ent.Task, *ent.Model) error       { return nil }
func (nopDispatcher) AdmitMany(context.Context, []*ent.Task, *ent.Model) error { return nil }
func (nopDispatcher) Remove(context.Context, *ent.Task, *ent.Model) error      { return nil }
func (nopDispatcher) CancelRunning(context.Context, int) error                 { return nil }
func (nopDispatcher) Pump(context.Context, *ent.Model) error                   { return nil }
func (nopDispatcher) QueueState(context.Context, *ent.Task, *ent.Model) (scheduler.QueueState, error) {
	return scheduler.QueueState{}, nil
}
func (nopDispatcher) Ping(context.Context) error { return nil }

type nopBus struct{}

func (nopBus) PublishTask(context.Context, events.TaskEvent) error { return nil }

func benchService(b *testing.B) (*scheduler.Service, int) {
	b.Helper()
	cfg := config.Defaults(true)
	cfg.Database.SQLitePath = filepath.Join(b.TempDir(), "bench.db")
	cfg.Queue.MaxQueueSize = 10_000_000
	ctx := context.Background()
	st, err := store.Open(ctx, cfg.Database)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	if err := st.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	svc := scheduler.New(scheduler.Options{
		DB: st.Client, Dispatcher: nopDispatcher{}, Bus: nopBus{}, Config: &cfg,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	workers := 50
	m, err := svc.CreateModel(ctx, scheduler.NewModel{Name: "bench", Type: "simulator", MaxWorkers: &workers,
		Config: map[string]any{"latency_ms": 0}})
	if err != nil {
		b.Fatal(err)
	}
	return svc, m.ID
}

// BenchmarkCreateTask is one submission: validate, model, backpressure,
// insert, announce, admit.
func BenchmarkCreateTask(b *testing.B) {
	svc, modelID := benchService(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := svc.CreateTask(ctx, scheduler.NewTask{ModelID: modelID, Type: "text-generation", Input: "benchmark"}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreateTasks1000 is one createTasks call of 1,000 inputs.
func BenchmarkCreateTasks1000(b *testing.B) {
	svc, modelID := benchService(b)
	ctx := context.Background()
	batch := make([]scheduler.NewTask, 1000)
	for i := range batch {
		batch[i] = scheduler.NewTask{ModelID: modelID, Type: "text-generation", Input: "benchmark"}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := svc.CreateTasks(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "tasks/s")
}

// BenchmarkTaskLifecycle is a worker's share of one task: read it and its
// model, start an attempt (pending -> running), complete it.
func BenchmarkTaskLifecycle(b *testing.B) {
	svc, modelID := benchService(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		t, err := svc.CreateTask(ctx, scheduler.NewTask{ModelID: modelID, Type: "text-generation", Input: "benchmark"})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t, err = svc.GetTask(ctx, t.ID)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := svc.ModelOf(ctx, t); err != nil {
			b.Fatal(err)
		}
		running, att, err := svc.StartAttempt(ctx, t, modelID, "bench")
		if err != nil {
			b.Fatal(err)
		}
		if err := svc.CompleteAttempt(ctx, running, att, scheduler.Outcome{Output: "done", PromptTokens: 1, CompletionTokens: 16}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTaskLifecycleParallel is BenchmarkTaskLifecycle with as many
// submitters and workers at once as the benchmark's parallelism
// (-cpu, times 16): their statements share batches (batch.go), so the
// cost per task should fall well below the sequential figure.
func BenchmarkTaskLifecycleParallel(b *testing.B) {
	svc, modelID := benchService(b)
	ctx := context.Background()
	b.SetParallelism(16)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			t, err := svc.CreateTask(ctx, scheduler.NewTask{ModelID: modelID, Type: "text-generation", Input: "benchmark"})
			if err != nil {
				b.Error(err)
				return
			}
			t, err = svc.GetTask(ctx, t.ID)
			if err != nil {
				b.Error(err)
				return
			}
			running, att, err := svc.StartAttempt(ctx, t, modelID, "bench")
			if err != nil {
				b.Error(err)
				return
			}
			if err := svc.CompleteAttempt(ctx, running, att, scheduler.Outcome{Output: "done", PromptTokens: 1, CompletionTokens: 16}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
