package chaos

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llmsched/llm-scheduler/ent/attempt"
	"github.com/llmsched/llm-scheduler/internal/app"
	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/internal/scheduler"
)

// outageEnv starts one in-process scheduler (role all) on the private
// MariaDB and Redis, which the test may stop and start.
func outageEnv(t *testing.T) (*apptest.Env, *MariaDB, *Redis) {
	t.Helper()
	maria, rds := privateServices(t)
	redisDBs.Lock()
	db := redisDBs.next
	redisDBs.next++
	redisDBs.Unlock()
	cfg := config.Defaults(false)
	cfg.App.Env = "test"
	cfg.Log.Level = "warn"
	cfg.Database.Host, cfg.Database.Port, cfg.Database.Username, cfg.Database.Password = "127.0.0.1", maria.Port, "root", ""
	cfg.Database.Database = fmt.Sprintf("outage_%d", time.Now().UnixNano()%1e9)
	cfg.Database.AutoMigrate = true
	cfg.Redis.Host, cfg.Redis.Port, cfg.Redis.DB, cfg.Redis.KeyPrefix = "127.0.0.1", rds.Port, db, "outage"
	cfg.Queue.PollInterval = config.Duration(2 * time.Millisecond)
	cfg.Queue.ReconcileInterval = config.Duration(300 * time.Millisecond)
	cfg.Queue.LeaseTTL = config.Duration(2 * time.Second)
	cfg.Queue.RetryDelay = config.Duration(100 * time.Millisecond)
	cfg.Queue.MaxRetryDelay = config.Duration(time.Second)
	cfg.Server.ShutdownGrace = config.Duration(time.Second)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(&redis.Options{Addr: rds.Addr(), DB: db})
	t.Cleanup(func() { rc.Close() })
	sh := &apptest.Shared{Config: &cfg, Redis: rc}
	return sh.Start(t, app.RoleAll), maria, rds
}

type healthBody struct {
	Status   string               `json:"status"`
	Database scheduler.Dependency `json:"database"`
	Redis    scheduler.Dependency `json:"redis"`
}

func checkHealth(t *testing.T, e *apptest.Env, wantCode int, dbOK, redisOK bool) healthBody {
	t.Helper()
	var h healthBody
	code := e.Do("GET", "/api/v1/system/health", nil, &h)
	if code != wantCode || h.Database.OK != dbOK || h.Redis.OK != redisOK {
		t.Fatalf("health: status %d %+v, want %d with database ok=%v redis ok=%v", code, h, wantCode, dbOK, redisOK)
	}
	return h
}

// TestRedisOutage: with Redis down, health is 503 and names Redis; a
// submission is still durably accepted (201: the database took it), and
// once Redis is back (empty: it kept nothing) every task completes, once.
func TestRedisOutage(t *testing.T) {
	e, _, rds := outageEnv(t)
	m := e.Simulator("r", 2, map[string]any{"latency_ms": 50, "output_tokens": 2})
	before := e.Submit(map[string]any{"model_id": m.ID, "type": "text-generation", "input": "before"})
	e.WaitTask(before.ID, "completed", 30*time.Second)

	rds.Stop()
	h := checkHealth(t, e, http.StatusServiceUnavailable, true, false)
	if h.Status != "unavailable" || h.Redis.Error == "" {
		t.Fatalf("health during a Redis outage = %+v, want unavailable with the Redis error", h)
	}
	var during []int
	for i := range 3 {
		during = append(during, e.Submit(map[string]any{"model_id": m.ID, "type": "text-generation", "input": fmt.Sprintf("during %d", i)}).ID)
	}
	got := e.Task(during[0])
	if got.Status != "pending" || got.PendingReason == "" {
		t.Fatalf("task accepted during the outage = %s (reason %q), want pending with a diagnosis", got.Status, got.PendingReason)
	}

	if err := rds.Start(); err != nil {
		t.Fatal(err)
	}
	for _, id := range during {
		e.WaitTask(id, "completed", 60*time.Second)
	}
	checkHealth(t, e, http.StatusOK, true, true)
	after := e.Submit(map[string]any{"model_id": m.ID, "type": "text-generation", "input": "after"})
	e.WaitTask(after.ID, "completed", 30*time.Second)
	for _, id := range append(during, before.ID, after.ID) {
		n, err := e.App.Store.Client.Attempt.Query().Where(attempt.TaskID(id), attempt.StatusEQ("succeeded")).Count(context.Background())
		if err != nil || n != 1 {
			t.Fatalf("task %d: %d succeeded attempts (%v), want 1", id, n, err)
		}
	}
}

// TestMySQLOutage: with the database down, writes and reads answer 503
// UNAVAILABLE naming the database, health is 503 and says which; a task
// whose provider call ends during the outage keeps its result and stores
// it when the database returns (one attempt, no re-run); intake resumes.
func TestMySQLOutage(t *testing.T) {
	e, maria, _ := outageEnv(t)
	m := e.Simulator("d", 1, map[string]any{"latency_ms": 1500, "output_tokens": 2})
	running := e.Submit(map[string]any{"model_id": m.ID, "type": "text-generation", "input": "spans the outage"})
	e.WaitTask(running.ID, "running", 30*time.Second)

	maria.Stop()
	h := checkHealth(t, e, http.StatusServiceUnavailable, false, true)
	if h.Database.Error == "" {
		t.Fatalf("health during a database outage has no database error: %+v", h)
	}
	for _, req := range []struct{ method, path string }{
		{"POST", "/api/v1/tasks"},
		{"GET", "/api/v1/tasks"},
		{"GET", fmt.Sprintf("/api/v1/tasks/%d", running.ID)},
		{"GET", "/api/v1/models"},
		{"GET", "/api/v1/stats/dashboard"},
	} {
		var eb apptest.ErrorBody
		body := map[string]any{"model_id": m.ID, "type": "text-generation", "input": "refused"}
		if req.method == "GET" {
			body = nil
		}
		code := e.Do(req.method, req.path, body, &eb)
		if code != http.StatusServiceUnavailable || eb.Error.Code != "UNAVAILABLE" || !strings.Contains(eb.Error.Message, "database") {
			t.Fatalf("%s %s during a database outage: status %d %+v, want 503 UNAVAILABLE naming the database", req.method, req.path, code, eb.Error)
		}
	}
	// The provider call ends (1.5s) while the database is down; the worker
	// holds the result and its slot until the database answers again.
	time.Sleep(2 * time.Second)
	if err := maria.Start(); err != nil {
		t.Fatal(err)
	}
	done := e.WaitTask(running.ID, "completed", 60*time.Second)
	if len(done.AttemptHistory) != 1 || done.AttemptHistory[0].Status != "succeeded" {
		t.Fatalf("attempts = %+v, want the one attempt, succeeded (stored after the outage, not re-run)", done.AttemptHistory)
	}
	checkHealth(t, e, http.StatusOK, true, true)
	after := e.Submit(map[string]any{"model_id": m.ID, "type": "text-generation", "input": "after"})
	e.WaitTask(after.ID, "completed", 30*time.Second)
}
