package jobs_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llmsched/llm-scheduler/internal/app"
	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/jobs"
)

// A worker that picks up a message soon after its task was granted a slot
// runs the task on that grant without asking Redis again (no Admit). An
// older grant, or one on a rate-limited model, is still confirmed with
// Admit. To tell the two apart the test gives the task's slot to another
// holder before the pickup: a pickup that trusts its grant runs the task,
// one that asks Redis finds the model full and parks it.
func TestPickupTrustsOnlyAFreshGrant(t *testing.T) {
	sh := apptest.NewShared(t, func(c *config.Config) {
		c.Queue.LeaseTTL = config.Duration(time.Minute)
		// Only the first round, which writes the epoch: later ones
		// would re-admit the tasks this test leaves without a slot.
		c.Queue.ReconcileInterval = config.Duration(time.Hour)
	})
	// No worker runs in an api process: the test delivers messages itself.
	e := sh.Start(t, app.RoleAPI)
	ctx := context.Background()
	rdb := e.App.Broker.Client
	waitForEpoch(t, rdb, e.App.Broker.Key("epoch"))
	w := jobs.NewWorker(e.App.Broker, e.App.Service, e.App.Dispatcher, e.App.Bus, e.App.Config, e.App.Log, jobs.Hooks{})
	t.Cleanup(w.Shutdown)
	insp := asynq.NewInspectorFromRedisClient(rdb)
	ttl := e.App.Config.Queue.LeaseTTL.D()

	tests := []struct {
		name   string
		config map[string]any
		// age, when set, rewrites the message's grant time to this long ago.
		age        time.Duration
		wantStatus string
	}{
		{name: "fresh grant", config: map[string]any{"output_tokens": 1}, wantStatus: "completed"},
		{name: "stale grant", config: map[string]any{"output_tokens": 1}, age: ttl/3 + time.Second, wantStatus: "pending"},
		{name: "rate-limited model", config: map[string]any{"output_tokens": 1, "rpm": 6000}, wantStatus: "pending"},
	}
	models := make([]apptest.Model, len(tests))
	for i, tc := range tests {
		models[i] = e.Simulator(tc.name, 1, tc.config)
	}
	// A grant trusted at pickup must come after the model's last change,
	// and grant times are in whole milliseconds.
	waitPastModelUpdates(t, e, models)

	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := models[i]
			tk := submit(e, m.ID, 2, tc.name)
			info, err := insp.GetTaskInfo(jobs.QueueFor(2), strconv.Itoa(tk.ID))
			if err != nil {
				t.Fatalf("the granted task's message: %v", err)
			}
			var p map[string]any
			if err := json.Unmarshal(info.Payload, &p); err != nil {
				t.Fatal(err)
			}
			if g, _ := p["granted_at"].(float64); g == 0 {
				t.Fatalf("message %s carries no grant time", info.Payload)
			}
			if tc.age > 0 {
				p["granted_at"] = time.Now().Add(-tc.age).UnixMilli()
			}
			raw, _ := json.Marshal(p)

			leases := jobs.LeasesKey(e.App.Dispatcher, m.ID)
			if err := rdb.ZRem(ctx, leases, strconv.Itoa(tk.ID)).Err(); err != nil {
				t.Fatal(err)
			}
			other := redis.Z{Score: float64(time.Now().Add(time.Hour).UnixMilli()), Member: "0"}
			if err := rdb.ZAdd(ctx, leases, other).Err(); err != nil {
				t.Fatal(err)
			}

			if err := w.ProcessTask(ctx, asynq.NewTask(jobs.TypeRunTask, raw)); err != nil {
				t.Fatalf("ProcessTask: %v", err)
			}
			got := e.Task(tk.ID)
			if got.Status != tc.wantStatus {
				t.Fatalf("task is %s after the pickup, want %s", got.Status, tc.wantStatus)
			}
			if got.Status == "pending" && (got.PendingReason != "model_at_capacity" || got.QueuePosition != 1) {
				t.Fatalf("task waits with reason %q at position %d, want parked first (Admit ran)", got.PendingReason, got.QueuePosition)
			}
		})
	}
}

func waitForEpoch(t *testing.T, rdb redis.UniversalClient, key string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := rdb.Exists(context.Background(), key).Result()
		if err == nil && n == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the reconciler did not write the epoch %s (err %v)", key, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitPastModelUpdates returns once the clock is in a later millisecond
// than every model's last update.
func waitPastModelUpdates(t *testing.T, e *apptest.Env, models []apptest.Model) {
	t.Helper()
	var last time.Time
	for _, m := range models {
		row, err := e.App.Store.Client.Model.Get(context.Background(), m.ID)
		if err != nil {
			t.Fatal(err)
		}
		if row.UpdatedAt.After(last) {
			last = row.UpdatedAt
		}
	}
	for time.Now().UnixMilli() <= last.UnixMilli() {
		time.Sleep(time.Millisecond)
	}
}
