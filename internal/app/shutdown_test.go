package app_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/llmsched/llm-scheduler/ent/attempt"
	"github.com/llmsched/llm-scheduler/internal/app"
	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/internal/config"
)

// TestGracefulShutdown: once shutdown begins, REST writes and health answer
// 503 UNAVAILABLE while reads still work; a task that ends within
// server.shutdown_grace completes; one that does not is handed back
// (a lost attempt recorded, the task pending) and another worker completes
// it later.
func TestGracefulShutdown(t *testing.T) {
	sh := apptest.NewShared(t, func(c *config.Config) {
		c.Server.ShutdownGrace = config.Duration(1500 * time.Millisecond)
	})
	// The observer outlives the stopping process (and, embedded, holds the
	// shared in-process Redis).
	observer := sh.Start(t, app.RoleAPI)
	victim := sh.Start(t, app.RoleAll)
	fastModel := observer.Simulator("fast", 1, map[string]any{"latency_ms": 600, "output_tokens": 1})
	slowModel := observer.Simulator("slow", 1, map[string]any{"latency_ms": 4000, "output_tokens": 1})
	fast := victim.Submit(map[string]any{"model_id": fastModel.ID, "type": "text-generation", "input": "quick"})
	slow := victim.Submit(map[string]any{"model_id": slowModel.ID, "type": "text-generation", "input": "long"})
	observer.WaitTask(fast.ID, "running", 10*time.Second)
	observer.WaitTask(slow.ID, "running", 10*time.Second)

	a := victim.App
	victim.App = nil // this test stops it; cleanup must not stop it twice
	done := make(chan error, 1)
	go func() { done <- a.Shutdown(context.Background()) }()
	t.Cleanup(func() {
		if err := <-done; err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	<-a.Stopping()

	assertStoppingRefusesWrites(t, victim, fastModel.ID, fast.ID)
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	done <- nil

	if got := observer.Task(fast.ID); got.Status != "completed" {
		t.Fatalf("task that fits in the grace period is %s, want completed", got.Status)
	}
	back := observer.Task(slow.ID)
	if back.Status != "pending" {
		t.Fatalf("task still running at the end of the grace period is %s, want pending (handed back)", back.Status)
	}
	if len(back.AttemptHistory) != 1 || back.AttemptHistory[0].Status != "lost" || back.AttemptHistory[0].ErrorKind != "interrupted" {
		t.Fatalf("attempts of the handed-back task = %+v, want one lost (interrupted) attempt", back.AttemptHistory)
	}

	sh.Start(t, app.RoleWorker)
	final := observer.WaitTask(slow.ID, "completed", 30*time.Second)
	if final.Attempts != 2 {
		t.Fatalf("handed-back task completed after %d attempts, want 2", final.Attempts)
	}
	ok, err := observer.App.Store.Client.Attempt.Query().
		Where(attempt.TaskID(slow.ID), attempt.StatusEQ("succeeded")).Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if ok != 1 {
		t.Fatalf("%d succeeded attempts, want exactly 1", ok)
	}
}

// assertStoppingRefusesWrites: while the victim stops, a REST submission,
// a GraphQL mutation and health answer 503 UNAVAILABLE, and reads of task
// taskID (GraphQL and REST) still answer.
func assertStoppingRefusesWrites(t *testing.T, victim *apptest.Env, modelID, taskID int) {
	t.Helper()
	var eb apptest.ErrorBody
	code := victim.Do("POST", "/api/v1/tasks", map[string]any{"model_id": modelID, "type": "text-generation", "input": "late"}, &eb)
	if code != http.StatusServiceUnavailable || eb.Error.Code != "UNAVAILABLE" {
		t.Fatalf("submission during shutdown: status %d code %q, want 503 UNAVAILABLE", code, eb.Error.Code)
	}
	var gql struct {
		Data   map[string]any `json:"data"`
		Errors []struct {
			Extensions map[string]any `json:"extensions"`
		} `json:"errors"`
	}
	mutation := map[string]any{
		"query":     `mutation($m: ID!) { createTask(input: {modelID: $m, type: TEXT_GENERATION, input: "late"}) { id } }`,
		"variables": map[string]any{"m": modelID},
	}
	victim.Do("POST", "/graphql", mutation, &gql)
	if len(gql.Errors) != 1 || gql.Errors[0].Extensions["code"] != "UNAVAILABLE" {
		t.Fatalf("GraphQL mutation during shutdown: %+v, want one UNAVAILABLE error", gql)
	}
	gql.Errors, gql.Data = nil, nil
	victim.Do("POST", "/graphql", map[string]any{"query": `{ task(id: ` + strconv.Itoa(taskID) + `) { id } }`}, &gql)
	if len(gql.Errors) != 0 || gql.Data["task"] == nil {
		t.Fatalf("GraphQL query during shutdown: %+v, want an answer", gql)
	}
	if code := victim.Do("GET", "/api/v1/system/health", nil, nil); code != http.StatusServiceUnavailable {
		t.Fatalf("health during shutdown: status %d, want 503 so load balancers drain", code)
	}
	if code := victim.Do("GET", "/api/v1/tasks/"+strconv.Itoa(taskID), nil, nil); code != http.StatusOK {
		t.Fatalf("read during shutdown: status %d, want 200", code)
	}
}

// TestAPIProcessDrainsBeforeClosing: an api-only process (no worker whose
// grace period would keep it up) keeps its listener open for
// server.drain_window after shutdown begins: health and new work answer
// 503 with Retry-After, reads are still served, so a load balancer takes
// it out before connections are refused; then it stops accepting.
func TestAPIProcessDrainsBeforeClosing(t *testing.T) {
	sh := apptest.NewShared(t, func(c *config.Config) {
		c.Server.DrainWindow = config.Duration(3 * time.Second)
	})
	sh.Start(t, app.RoleWorker) // holds the embedded Redis
	api := sh.Start(t, app.RoleAPI)
	a := api.App
	api.App = nil // this test stops it
	done := make(chan error, 1)
	go func() { done <- a.Shutdown(context.Background()) }()
	<-a.Stopping()

	resp, err := api.HTTP.Get(api.URL + "/api/v1/system/health")
	if err != nil {
		t.Fatalf("health right after shutdown began: %v, want a 503 answer during the drain window", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("health while draining: %d Retry-After %q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if code := api.Do("GET", "/api/v1/models", nil, nil); code != http.StatusOK {
		t.Fatalf("a read while draining: %d, want 200", code)
	}
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if resp, err := api.HTTP.Get(api.URL + "/api/v1/system/health"); err == nil {
		resp.Body.Close()
		t.Fatalf("after the drain window the listener still answers (%d)", resp.StatusCode)
	}
}

// TestTwoDeploymentsCannotShareARedisDatabase: asynq's keys cannot carry
// redis.key_prefix, so a second deployment (another key_prefix) on the
// same Redis database would share its queues; it refuses to start, naming
// both prefixes and redis.db. Another process of the same deployment
// starts.
func TestTwoDeploymentsCannotShareARedisDatabase(t *testing.T) {
	sh := apptest.NewShared(t, nil)
	first := sh.Start(t, app.RoleAll)
	sh.Start(t, app.RoleWorker) // same deployment, same prefix
	cfg := *sh.Config
	if cfg.Redis.Embedded {
		host, port, _ := strings.Cut(first.App.Broker.Embedded.Addr(), ":")
		cfg.Redis.Embedded, cfg.Redis.Host = false, host
		cfg.Redis.Port, _ = strconv.Atoi(port)
	}
	cfg.Redis.KeyPrefix = "other-deployment"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := app.New(ctx, &cfg, app.RoleAll, first.App.Log)
	if err == nil {
		_ = a.Shutdown(ctx)
		t.Fatal("a second deployment started on the first one's Redis database")
	}
	for _, want := range []string{"redis.key_prefix", `"other-deployment"`, sh.Config.Redis.KeyPrefix, "redis.db"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not name %s", err, want)
		}
	}
}
