package jobs_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/ent/attempt"
	"github.com/llmsched/llm-scheduler/internal/app"
	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/internal/config"
)

func submit(e *apptest.Env, modelID, priority int, input string) apptest.Task {
	e.T.Helper()
	return e.Submit(map[string]any{"model_id": modelID, "type": "text-generation", "input": input, "priority": priority})
}

func setStatus(e *apptest.Env, modelID int, status string) {
	e.T.Helper()
	if code := e.Do("PUT", fmt.Sprintf("/api/v1/models/%d/status", modelID), map[string]any{"status": status}, nil); code != http.StatusOK {
		e.T.Fatalf("set model %d %s: status %d", modelID, status, code)
	}
}

// attemptsOf reads the attempts of the given tasks from the database.
func attemptsOf(t *testing.T, e *apptest.Env, ids ...int) []*ent.Attempt {
	t.Helper()
	as, err := e.App.Store.Client.Attempt.Query().Where(attempt.TaskIDIn(ids...)).All(context.Background())
	if err != nil {
		t.Fatalf("read attempts: %v", err)
	}
	return as
}

// maxOverlap is the largest number of attempt intervals open at one instant.
func maxOverlap(as []*ent.Attempt) int {
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, a := range as {
		end := time.Now()
		if a.FinishedAt != nil {
			end = *a.FinishedAt
		}
		edges = append(edges, edge{a.StartedAt, 1}, edge{end, -1})
	}
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].at.Equal(edges[j].at) {
			return edges[i].delta < edges[j].delta // close before open at a tie
		}
		return edges[i].at.Before(edges[j].at)
	})
	cur, peak := 0, 0
	for _, ed := range edges {
		cur += ed.delta
		peak = max(peak, cur)
	}
	return peak
}

func TestPriorityOrderAndFIFO(t *testing.T) {
	e := apptest.New(t, nil)
	m := e.Simulator("prio", 1, map[string]any{"latency_ms": 20, "output_tokens": 2})
	// Offline while the tasks are submitted: all of them wait parked when
	// the model's one slot is first handed out.
	setStatus(e, m.ID, "offline")
	first := submit(e, m.ID, 2, "first")
	var lows, highs []int
	for i := range 5 {
		lows = append(lows, submit(e, m.ID, 1, fmt.Sprintf("low %d", i)).ID)
	}
	for i := range 5 {
		highs = append(highs, submit(e, m.ID, 3, fmt.Sprintf("high %d", i)).ID)
	}
	setStatus(e, m.ID, "online")
	all := append(append([]int{first.ID}, lows...), highs...)
	for _, id := range all {
		e.WaitTask(id, "completed", 30*time.Second)
	}
	as := attemptsOf(t, e, append(lows, highs...)...)
	sort.Slice(as, func(i, j int) bool { return as[i].StartedAt.Before(as[j].StartedAt) })
	var order []int
	for _, a := range as {
		order = append(order, a.TaskID)
	}
	want := append(slices.Clone(highs), lows...)
	if !slices.Equal(order, want) {
		t.Fatalf("run order = %v, want highs in submission order then lows in submission order %v", order, want)
	}
}

func TestSaturatedModelDoesNotDelayOthers(t *testing.T) {
	e := apptest.New(t, func(c *config.Config) { c.Worker.MaxWorkers, c.Worker.DefaultWorkers = 4, 2 })
	a := e.Simulator("busy", 1, map[string]any{"latency_ms": 400, "output_tokens": 1})
	b := e.Simulator("idle", 1, map[string]any{"latency_ms": 0, "output_tokens": 1})
	var backlog []int
	for i := range 10 {
		backlog = append(backlog, submit(e, a.ID, 3, fmt.Sprintf("a %d", i)).ID)
	}
	low := submit(e, b.ID, 1, "b low")
	done := e.WaitTask(low.ID, "completed", 30*time.Second)
	// When B's low task is done, model A has at most finished one task of
	// its high-priority backlog: B did not wait behind it.
	finishedA := 0
	for _, id := range backlog {
		if e.Task(id).Status == "completed" {
			finishedA++
		}
	}
	if finishedA > 1 {
		t.Fatalf("model B's low task finished after %d of model A's high tasks; it waited behind them", finishedA)
	}
	if done.Attempts != 1 {
		t.Fatalf("attempts = %d", done.Attempts)
	}
}

// TestRetryWithBackoff: retryable failures are retried after a delay that
// doubles per attempt (±20% jitter), from queue.retry_delay. Each gap
// between an attempt's end and the next one's start is at least 75% of its
// doubled delay; a flat backoff (every gap ~250 ms) fails the third gap's
// bound (750 ms) unless a pickup took over half a second. (Checking only
// that the second gap exceeds the first missed a flat backoff 1 time in 8.)
func TestRetryWithBackoff(t *testing.T) {
	const base = 250 * time.Millisecond
	e := apptest.New(t, func(c *config.Config) {
		c.Queue.RetryDelay = config.Duration(base)
		c.Queue.MaxRetryDelay = config.Duration(10 * time.Second)
	})
	flaky := e.Simulator("flaky", 2, map[string]any{"fail_first_n": 3, "fail_kind": "retryable", "output_tokens": 2})
	task := submit(e, flaky.ID, 2, "try me")
	done := e.WaitTask(task.ID, "completed", 30*time.Second)
	if done.Attempts != 4 {
		t.Fatalf("attempts = %d, want 4", done.Attempts)
	}
	h := done.AttemptHistory
	if len(h) != 4 || h[0].Status != "failed" || h[1].Status != "failed" || h[2].Status != "failed" || h[3].Status != "succeeded" {
		t.Fatalf("attempt history = %+v, want failed, failed, failed, succeeded", h)
	}
	for i := range 3 {
		gap := h[i+1].StartedAt.Sub(*h[i].FinishedAt)
		if least := base * time.Duration(1<<i) * 3 / 4; gap < least {
			t.Fatalf("gap after attempt %d: %s, want at least %s (%s doubled %d times, less the jitter)", i+1, gap, least, base, i)
		}
	}
	if h[0].ErrorKind != "retryable" || h[0].Error == "" {
		t.Fatalf("first attempt error = %q (%s)", h[0].Error, h[0].ErrorKind)
	}

	broken := e.Simulator("broken", 2, map[string]any{"fail_first_n": 5, "fail_kind": "permanent"})
	p := submit(e, broken.ID, 2, "never")
	failed := e.WaitTask(p.ID, "failed", 30*time.Second)
	if failed.Attempts != 1 || len(failed.AttemptHistory) != 1 || failed.AttemptHistory[0].ErrorKind != "permanent" {
		t.Fatalf("permanent error: attempts %d, history %+v; want one permanent attempt", failed.Attempts, failed.AttemptHistory)
	}

	// Retries exhausted: max_retries 1 means two attempts, then failed.
	always := e.Simulator("always-503", 1, map[string]any{"fail_first_n": 100})
	gone := e.Submit(map[string]any{"model_id": always.ID, "type": "text-generation", "input": "x", "max_retries": 1})
	if got := e.WaitTask(gone.ID, "failed", 30*time.Second); got.Attempts != 2 {
		t.Fatalf("max_retries 1: %d attempts, want 2", got.Attempts)
	}
}

func TestCancelAndManualRetry(t *testing.T) {
	e := apptest.New(t, nil)
	slow := e.Simulator("slow", 1, map[string]any{"latency_ms": 30000})
	running := submit(e, slow.ID, 2, "run then cancel")
	e.WaitTask(running.ID, "running", 30*time.Second)
	pending := submit(e, slow.ID, 2, "cancel while pending")
	if got := e.Task(pending.ID); got.Status != "pending" || got.PendingReason != "model_at_capacity" || got.QueuePosition != 1 {
		t.Fatalf("pending task: status %s reason %q position %d", got.Status, got.PendingReason, got.QueuePosition)
	}
	if code := e.Do("DELETE", fmt.Sprintf("/api/v1/tasks/%d", pending.ID), nil, nil); code != http.StatusOK {
		t.Fatalf("cancel pending: %d", code)
	}
	if code := e.Do("DELETE", fmt.Sprintf("/api/v1/tasks/%d", running.ID), nil, nil); code != http.StatusOK {
		t.Fatalf("cancel running: %d", code)
	}
	// The running attempt is aborted: the worker records it as cancelled
	// long before the simulator's 30 s latency.
	deadline := time.Now().Add(10 * time.Second)
	for {
		h := e.Task(running.ID).AttemptHistory
		if len(h) == 1 && h[0].Status == "cancelled" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("running attempt not aborted: %+v", h)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := e.Task(pending.ID); got.Status != "cancelled" || got.Attempts != 0 {
		t.Fatalf("cancelled pending task: %s with %d attempts", got.Status, got.Attempts)
	}
	// Cancelling twice is a conflict.
	var eb apptest.ErrorBody
	if code := e.Do("DELETE", fmt.Sprintf("/api/v1/tasks/%d", pending.ID), nil, &eb); code != http.StatusConflict || eb.Error.Code != "CONFLICT" {
		t.Fatalf("second cancel: %d %+v", code, eb)
	}
	// TestCancelRunningFreesItsSlot checks that the slot is free again.

	// Manual retry of a failed task runs it again with its history kept.
	once := e.Simulator("fails-once", 1, map[string]any{"fail_first_n": 1})
	f := e.Submit(map[string]any{"model_id": once.ID, "type": "text-generation", "input": "x", "max_retries": 0})
	e.WaitTask(f.ID, "failed", 30*time.Second)
	var out struct{ Data apptest.Task }
	if code := e.Do("POST", fmt.Sprintf("/api/v1/tasks/%d/retry", f.ID), nil, &out); code != http.StatusOK || out.Data.Status != "pending" {
		t.Fatalf("retry: %d %+v", code, out.Data)
	}
	done := e.WaitTask(f.ID, "completed", 30*time.Second)
	if done.Attempts != 2 || done.AttemptHistory[0].Status != "failed" || done.AttemptHistory[1].Status != "succeeded" {
		t.Fatalf("after manual retry: %+v", done.AttemptHistory)
	}
	// Retrying a completed task is a conflict.
	if code := e.Do("POST", fmt.Sprintf("/api/v1/tasks/%d/retry", f.ID), nil, nil); code != http.StatusConflict {
		t.Fatalf("retry completed: %d", code)
	}
	// A cancelled task can be retried too.
	if code := e.Do("POST", fmt.Sprintf("/api/v1/tasks/%d/retry", pending.ID), nil, nil); code != http.StatusOK {
		t.Fatalf("retry cancelled: %d", code)
	}
	if code := e.Do("DELETE", fmt.Sprintf("/api/v1/tasks/%d", pending.ID), nil, nil); code != http.StatusOK {
		t.Fatalf("cancel again: %d", code)
	}
}

// TestCancelRunningFreesItsSlot: cancelling the running task of a model
// with max_workers 1 hands its slot to the model's next task at once, not
// when the lease expires. Breakage caught: a worker that keeps the slot
// after a cancel (neither the handler nor asynq's redelivery of the
// cancelled message, which frees what a terminal task holds, releases it);
// the next task then waits for the lease TTL, here a minute. Either
// release alone frees the slot within a second.
func TestCancelRunningFreesItsSlot(t *testing.T) {
	const leaseTTL = time.Minute
	e, slow, running := runningOnOneSlot(t, leaseTTL, 2*time.Minute, "run then cancel")
	next := submit(e, slow.ID, 2, "next")
	if got := e.Task(next.ID); got.Status != "pending" || got.PendingReason != "model_at_capacity" {
		t.Fatalf("next task: status %s reason %q, want pending / model_at_capacity", got.Status, got.PendingReason)
	}
	cancelled := time.Now()
	if code := e.Do("DELETE", fmt.Sprintf("/api/v1/tasks/%d", running.ID), nil, nil); code != http.StatusOK {
		t.Fatalf("cancel running: %d", code)
	}
	// A third of the lease TTL: far more than a hand-off takes even on a
	// loaded machine, far less than waiting for the lease to expire.
	e.WaitTask(next.ID, "running", leaseTTL/3)
	t.Logf("the next task ran %s after the cancel", time.Since(cancelled).Round(time.Millisecond))
	if code := e.Do("DELETE", fmt.Sprintf("/api/v1/tasks/%d", next.ID), nil, nil); code != http.StatusOK {
		t.Fatalf("cancel next: %d", code)
	}
}

// runningOnOneSlot starts the app with the given slot lease TTL and a
// model with one slot whose calls take latency, submits a task to it and
// waits until the task runs.
func runningOnOneSlot(t *testing.T, leaseTTL, latency time.Duration, input string) (*apptest.Env, apptest.Model, apptest.Task) {
	t.Helper()
	e := apptest.New(t, func(c *config.Config) { c.Queue.LeaseTTL = config.Duration(leaseTTL) })
	m := e.Simulator("one-slot", 1, map[string]any{"latency_ms": latency.Milliseconds()})
	task := submit(e, m.ID, 2, input)
	e.WaitTask(task.ID, "running", 30*time.Second)
	return e, m, task
}

func TestBackpressure(t *testing.T) {
	e := apptest.New(t, func(c *config.Config) { c.Queue.MaxQueueSize = 5 })
	m := e.Simulator("bp", 2, map[string]any{"output_tokens": 1})
	setStatus(e, m.ID, "offline")
	var ids []int
	for i := range 5 {
		ids = append(ids, submit(e, m.ID, 2, fmt.Sprint(i)).ID)
	}
	before := e.CountTasks()
	resp := doRaw(t, e, "POST", "/api/v1/tasks", fmt.Sprintf(`{"model_id": %d, "type": "text-generation", "input": "sixth"}`, m.ID))
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("6th submission: status %d, Retry-After %q; want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if after := e.CountTasks(); after != before {
		t.Fatalf("refused submission wrote a task: %d -> %d", before, after)
	}
	setStatus(e, m.ID, "online")
	for _, id := range ids {
		e.WaitTask(id, "completed", 30*time.Second)
	}
}

func doRaw(t *testing.T, e *apptest.Env, method, path, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, e.URL+path, stringsReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestRedisFlushLosesNothing(t *testing.T) {
	sh := apptest.NewShared(t, nil)
	e := sh.Start(t, app.RoleAll)
	m := e.Simulator("flush", 2, map[string]any{"output_tokens": 1})
	setStatus(e, m.ID, "offline")
	var ids []int
	for i := range 6 {
		ids = append(ids, submit(e, m.ID, 1+i%3, fmt.Sprint(i)).ID)
	}
	if err := sh.Redis.FlushDB(context.Background()).Err(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	setStatus(e, m.ID, "online")
	for _, id := range ids {
		if got := e.WaitTask(id, "completed", 60*time.Second); got.Attempts != 1 {
			t.Fatalf("task %d ran %d times", id, got.Attempts)
		}
	}
}

// TestRedisFlushWithTasksRunningKeepsMaxWorkers: Redis loses its data
// while a task runs on a model with max_workers 1 (on Redis Cluster every
// master is flushed). A task submitted then must wait until the running
// one ends: the running task's lease is gone from Redis, and until the
// reconciler has given running workers a heartbeat to restore their
// leases, no slot is handed out (the epoch guard). Breakage caught: slots
// handed out while the epoch key is missing (Slots.grantable and the
// scripts' epoch check removed); the new task then ran beside the running
// one.
func TestRedisFlushWithTasksRunningKeepsMaxWorkers(t *testing.T) {
	flushKeepsMaxWorkers(t, func(ctx context.Context, sh *apptest.Shared, _ int) error {
		return flushAll(ctx, sh.Redis)
	})
}

// TestRedisClusterShardLossWithTasksRunningKeepsMaxWorkers: on Redis
// Cluster, only the master holding the model's keys loses its data (the
// epoch key, on another master, survives). The task submitted then must
// still wait for the running one. Breakage caught (it failed 2 runs in 10
// before): the epoch read outside the slot script, where the surviving
// epoch let the model's only slot go beside the running task; now the
// scripts check the model's own epoch marker (Slots.markModel). Removing
// that check (scriptKeys without the marker) fails it again.
func TestRedisClusterShardLossWithTasksRunningKeepsMaxWorkers(t *testing.T) {
	if os.Getenv("TEST_REDIS_CLUSTER") == "" || os.Getenv("LLMSCHED_TEST_BACKEND") != "mysql" {
		t.Skip("Redis Cluster only (LLMSCHED_TEST_BACKEND=mysql and TEST_REDIS_CLUSTER)")
	}
	flushKeepsMaxWorkers(t, func(ctx context.Context, sh *apptest.Shared, modelID int) error {
		c, ok := sh.Redis.(*redis.ClusterClient)
		if !ok {
			return fmt.Errorf("TEST_REDIS_CLUSTER is set but the test Redis is a %T", sh.Redis)
		}
		master, err := c.MasterForKey(ctx, fmt.Sprintf("{%s:model:%d}:leases", sh.Config.Redis.KeyPrefix, modelID))
		if err != nil {
			return err
		}
		return master.FlushDB(ctx).Err()
	})
}

func flushKeepsMaxWorkers(t *testing.T, flush func(ctx context.Context, sh *apptest.Shared, modelID int) error) {
	sh := apptest.NewShared(t, nil)
	e := sh.Start(t, app.RoleAll)
	ctx := context.Background()
	m := e.Simulator("flush-running", 1, map[string]any{"latency_ms": 120000})
	running := submit(e, m.ID, 2, "runs through the flush")
	e.WaitTask(running.ID, "running", 30*time.Second)
	if err := flush(ctx, sh, m.ID); err != nil {
		t.Fatalf("flush: %v", err)
	}
	next := submit(e, m.ID, 2, "submitted after the flush")
	// Wait until the reconciler has re-established Redis (the epoch key is
	// back), then a round more: every slot it would hand out is out.
	epoch := sh.Config.Redis.KeyPrefix + ":epoch"
	deadline := time.Now().Add(60 * time.Second)
	for sh.Redis.Exists(ctx, epoch).Val() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the reconciler did not write the epoch key %s within 60s of the flush", epoch)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(2 * e.App.Config.Queue.ReconcileInterval.D())
	if got := e.Task(next.ID); got.Status != "pending" || got.Attempts != 0 {
		t.Fatalf("task submitted after the flush: status %s, %d attempts while the model's one slot is busy; want pending", got.Status, got.Attempts)
	}
	if got := e.Task(running.ID); got.Status != "running" || got.Attempts != 1 {
		t.Fatalf("running task after the flush: status %s, %d attempts; want still running its first", got.Status, got.Attempts)
	}
	// Its slot is the running task's: cancelling that one hands it on.
	if code := e.Do("DELETE", fmt.Sprintf("/api/v1/tasks/%d", running.ID), nil, nil); code != http.StatusOK {
		t.Fatalf("cancel running: %d", code)
	}
	e.WaitTask(next.ID, "running", 30*time.Second)
	if peak := maxOverlap(attemptsOf(t, e, running.ID, next.ID)); peak != 1 {
		t.Fatalf("%d attempts ran at once on a model with max_workers 1", peak)
	}
	if code := e.Do("DELETE", fmt.Sprintf("/api/v1/tasks/%d", next.ID), nil, nil); code != http.StatusOK {
		t.Fatalf("cancel next: %d", code)
	}
}

// TestOfflineModelTasksWait: a task of an offline model stays pending
// (reason model_offline, no attempt) while workers run other models' tasks
// and the reconciler pumps every model, and runs once the model is online.
// Breakage caught: capacity() ignoring the offline status (the task ran at
// once; one status read right after the submission missed it 4 times in 5).
func TestOfflineModelTasksWait(t *testing.T) {
	e := apptest.New(t, nil)
	m := e.Simulator("sleepy", 1, map[string]any{"output_tokens": 1})
	other := e.Simulator("awake", 1, map[string]any{"output_tokens": 1})
	setStatus(e, m.ID, "offline")
	task := submit(e, m.ID, 2, "wait for me")
	check := func() {
		t.Helper()
		if got := e.Task(task.ID); got.Status != "pending" || got.PendingReason != "model_offline" || got.Attempts != 0 {
			t.Fatalf("offline model's task: status %s reason %q attempts %d, want pending / model_offline / 0", got.Status, got.PendingReason, got.Attempts)
		}
	}
	// Look while workers run another model's tasks (so they are picking
	// work up) and for three reconciler rounds (each pumps every model).
	rounds := time.Now().Add(3 * e.App.Config.Queue.ReconcileInterval.D())
	for i := 0; i < 3 || time.Now().Before(rounds); i++ {
		check()
		e.WaitTask(submit(e, other.ID, 2, fmt.Sprintf("other %d", i)).ID, "completed", 30*time.Second)
	}
	check()
	setStatus(e, m.ID, "online")
	e.WaitTask(task.ID, "completed", 30*time.Second)
}

func TestAttemptTimeout(t *testing.T) {
	e := apptest.New(t, nil)
	m := e.Simulator("slowpoke", 1, map[string]any{"latency_ms": 20000})
	task := e.Submit(map[string]any{"model_id": m.ID, "type": "text-generation", "input": "x", "timeout_seconds": 1, "max_retries": 0})
	got := e.WaitTask(task.ID, "failed", 30*time.Second)
	if len(got.AttemptHistory) != 1 || got.AttemptHistory[0].ErrorKind != "timeout" {
		t.Fatalf("attempts = %+v, want one timed-out attempt", got.AttemptHistory)
	}
}

// TestWeightedStrategyInsideAModel: one low task parked behind 20 high
// tasks on a model with max_workers 1 starts within the first few
// hand-offs under queue.strategy weighted (6/3/1), and last under strict.
// Breakage caught: a model's parked queue that stays strict whatever the
// strategy (the low task ran 21st of 21 with weighted on).
func TestWeightedStrategyInsideAModel(t *testing.T) {
	for _, tc := range []struct {
		strategy string
		// The low task starts after this many high tasks, at least and at most.
		lowAfterAtLeast, lowAfterAtMost int
	}{
		{strategy: "weighted", lowAfterAtLeast: 1, lowAfterAtMost: 10},
		{strategy: "strict", lowAfterAtLeast: 20, lowAfterAtMost: 20},
	} {
		t.Run(tc.strategy, func(t *testing.T) {
			e := apptest.New(t, func(c *config.Config) { c.Queue.Strategy = tc.strategy })
			m := e.Simulator("weighted-"+tc.strategy, 1, map[string]any{"latency_ms": 5, "output_tokens": 1})
			// Offline while the backlog is submitted: the model is
			// saturated (nothing it could run is left unparked) before
			// the first slot is handed out.
			setStatus(e, m.ID, "offline")
			var highs []int
			for i := range 20 {
				highs = append(highs, submit(e, m.ID, 3, fmt.Sprintf("high %d", i)).ID)
			}
			low := submit(e, m.ID, 1, "low")
			setStatus(e, m.ID, "online")
			for _, id := range append(highs, low.ID) {
				e.WaitTask(id, "completed", 60*time.Second)
			}
			as := attemptsOf(t, e, append(highs, low.ID)...)
			sort.Slice(as, func(i, j int) bool { return as[i].StartedAt.Before(as[j].StartedAt) })
			before := -1
			for i, a := range as {
				if a.TaskID == low.ID {
					before = i
				}
			}
			if before < tc.lowAfterAtLeast || before > tc.lowAfterAtMost {
				t.Fatalf("%s: the low task started after %d high tasks, want %d to %d", tc.strategy, before, tc.lowAfterAtLeast, tc.lowAfterAtMost)
			}
		})
	}
}
