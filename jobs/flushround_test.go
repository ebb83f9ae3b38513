package jobs_test

import (
	"context"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llmsched/llm-scheduler/internal/app"
	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/internal/rediskeys"
	"github.com/llmsched/llm-scheduler/jobs"
)

// roundWithLossInside starts a task that runs for minutes on a one-slot
// model and a reconciler of its own (lease TTL 1 s, not started: the test
// runs its rounds), which runs lose in the middle of its next round with a
// lease missing, between reading the tasks and reading what Redis holds of
// them. It returns the reconciler and the running task.
func roundWithLossInside(t *testing.T, lose func(ctx context.Context, e *apptest.Env, modelID int) error) (*apptest.Env, *jobs.Reconciler, apptest.Task, *atomic.Int32) {
	t.Helper()
	sh := apptest.NewShared(t, nil)
	e := sh.Start(t, app.RoleAll)
	m := e.Simulator("loss-in-round", 1, map[string]any{"latency_ms": 120000})
	running := submit(e, m.ID, 2, "runs through the round")
	e.WaitTask(running.ID, "running", 30*time.Second)
	a := e.App
	r := jobs.NewReconciler(a.Store.Client, a.Service.Lifecycle, a.Dispatcher, a.Broker.Prefix, 50*time.Millisecond, time.Second, time.Second, a.Log)
	var ran atomic.Int32
	jobs.BeforeHeld(r, func(ctx context.Context) {
		if ran.Add(1) == 1 {
			if err := lose(ctx, e, m.ID); err != nil {
				t.Errorf("lose redis data: %v", err)
			}
		}
	})
	return e, r, running, &ran
}

// checkNotTakenOver: the round left the task running its first attempt.
func checkNotTakenOver(t *testing.T, e *apptest.Env, running apptest.Task, ran *atomic.Int32) {
	t.Helper()
	if ran.Load() == 0 {
		t.Fatal("the round never read what Redis holds: the loss was not inside it")
	}
	if got := e.Task(running.ID); got.Status != "running" || got.Attempts != 1 {
		t.Fatalf("task after the round: status %s, %d attempts; want still running its first (its worker is alive)", got.Status, got.Attempts)
	}
}

// TestAFlushDuringAFullRoundTakesNobodyOver: a full round (one after Redis
// lost its data, as a process's first round is) treats a running task
// without a lease as lost, its worker having had a lease period to restore
// it. A flush during that round wipes the leases it is about to read; the
// task whose live worker still runs it must not be taken over (it was, in
// a CI run: the first round of a process ran as the test flushed Redis
// right after its task started, and the model then ran two tasks on its
// one slot). Breakage caught: a full round skipping the epoch check
// (Reconciler.intact) takes the task over.
func TestAFlushDuringAFullRoundTakesNobodyOver(t *testing.T) {
	ctx := context.Background()
	e, r, running, ran := roundWithLossInside(t, func(ctx context.Context, e *apptest.Env, _ int) error {
		return flushAll(ctx, e.Shared.Redis)
	})
	// The epoch key gone: this reconciler waits a lease period for running
	// workers, then runs a full round (so does the process's own, after
	// its 10 s lease TTL: not within this test).
	if err := e.Shared.Redis.Del(ctx, rediskeys.Epoch(e.App.Broker.Prefix)).Err(); err != nil {
		t.Fatal(err)
	}
	if err := r.Once(ctx); err != nil {
		t.Fatal(err)
	}
	if ran.Load() != 0 {
		t.Fatal("the round that saw the epoch missing went on: it should wait a lease period first")
	}
	time.Sleep(1100 * time.Millisecond)
	if err := r.Once(ctx); err != nil {
		t.Fatal(err)
	}
	checkNotTakenOver(t, e, running, ran)
}

// TestAShardLossDuringARoundTakesNobodyOver (Redis Cluster): a round that
// finds a running task's lease missing, its model's shard having lost its
// keys meanwhile while the epoch key (on another shard) survived, must not
// take the task over: the model's marker went with the shard. Breakage
// caught: checking the epoch key alone.
func TestAShardLossDuringARoundTakesNobodyOver(t *testing.T) {
	if os.Getenv("TEST_REDIS_CLUSTER") == "" || os.Getenv("LLMSCHED_TEST_BACKEND") != "mysql" {
		t.Skip("Redis Cluster only (LLMSCHED_TEST_BACKEND=mysql and TEST_REDIS_CLUSTER)")
	}
	ctx := context.Background()
	e, r, running, ran := roundWithLossInside(t, func(ctx context.Context, e *apptest.Env, modelID int) error {
		// What a flush of the model's shard takes (the epoch key lives
		// elsewhere): its leases and its marker.
		d := e.App.Dispatcher
		return e.Shared.Redis.Del(ctx, jobs.LeasesKey(d, modelID), jobs.MarkKey(d, modelID)).Err()
	})
	if jobs.MarkKey(e.App.Dispatcher, running.ModelID) == "" {
		t.Fatal("no model markers on Redis Cluster")
	}
	// A regular round takes over a task without a lease once it has run
	// for a lease period (1 s here).
	time.Sleep(1100 * time.Millisecond)
	if err := r.Once(ctx); err != nil {
		t.Fatal(err)
	}
	checkNotTakenOver(t, e, running, ran)
}

// flushAll empties the test's Redis database: every master of a Cluster.
func flushAll(ctx context.Context, rdb redis.UniversalClient) error {
	if c, ok := rdb.(*redis.ClusterClient); ok {
		return c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error { return m.FlushDB(ctx).Err() })
	}
	return rdb.FlushDB(ctx).Err()
}
