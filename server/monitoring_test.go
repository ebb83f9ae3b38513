package server_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/internal/config"
)

func TestMonitoringServesAsynqmonWithTheSchedulersQueues(t *testing.T) {
	e := apptest.New(t, nil)
	m := e.Simulator("mon-sim", 2, map[string]any{"latency_ms": 5, "output_tokens": 2})
	for prio := 1; prio <= 3; prio++ {
		task := e.Submit(map[string]any{"model_id": m.ID, "type": "text-generation", "input": "hi", "priority": prio})
		e.WaitTask(task.ID, "completed", 30*time.Second)
	}

	code, h, body := get(t, e, "GET", "/monitoring/")
	if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/html") || !strings.Contains(body, "Asynq monitoring web console") {
		t.Fatalf("GET /monitoring/ = %d %q, asynqmon UI: %v", code, h.Get("Content-Type"), strings.Contains(body, "Asynq"))
	}

	var out struct {
		Queues []struct {
			Queue     string `json:"queue"`
			Processed int    `json:"processed"`
		} `json:"queues"`
	}
	if code := e.Do("GET", "/monitoring/api/queues", nil, &out); code != http.StatusOK {
		t.Fatalf("GET /monitoring/api/queues = %d", code)
	}
	var names []string
	processed := 0
	for _, q := range out.Queues {
		names = append(names, q.Queue)
		processed += q.Processed
	}
	for _, want := range []string{"high", "medium", "low"} {
		if !slices.Contains(names, want) {
			t.Errorf("asynqmon lists queues %v, want %q among them", names, want)
		}
	}
	if processed < 3 {
		t.Errorf("asynqmon counts %d processed tasks, want at least 3", processed)
	}

	// asynqmon is read-only: the database is the system of record.
	if code := e.Do("DELETE", "/monitoring/api/queues/high", nil, nil); code < 400 {
		t.Errorf("DELETE /monitoring/api/queues/high = %d, want a refusal", code)
	}
}

func TestMonitoringIsAdminOnlyWithAuth(t *testing.T) {
	on := true
	e := apptest.New(t, func(c *config.Config) { c.Auth.Enabled = &on })
	for _, p := range []string{"/monitoring/", "/monitoring/api/queues", "/api/v1/system/config"} {
		code, h, body := get(t, e, "GET", p)
		if code != http.StatusUnauthorized {
			t.Errorf("GET %s without a key = %d, want 401", p, code)
		}
		if strings.Contains(body, "Asynq") || strings.Contains(body, `"queues"`) {
			t.Errorf("GET %s without a key leaked the page", p)
		}
		if p != "/api/v1/system/config" && !strings.HasPrefix(h.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("GET %s: no Basic challenge for the browser", p)
		}
	}
}

// TestMonitoringAnswers503WhileRedisIsDown: asynqmon's API answers a bare
// 500 with the driver's error when Redis is gone; /monitoring answers
// 503 UNAVAILABLE with Retry-After instead, like every other outage.
func TestMonitoringAnswers503WhileRedisIsDown(t *testing.T) {
	e := apptest.New(t, nil)
	if e.App.Broker.Embedded == nil {
		t.Skip("needs the embedded Redis, which the test can stop")
	}
	if code := e.Do("GET", "/monitoring/api/queues", nil, nil); code != http.StatusOK {
		t.Fatalf("with Redis up: %d", code)
	}
	e.App.Broker.Embedded.Close()
	code, h, body := get(t, e, "GET", "/monitoring/api/queues")
	if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" || !strings.Contains(body, `"UNAVAILABLE"`) || !strings.Contains(body, "redis") {
		t.Fatalf("with Redis down: %d Retry-After %q %s, want 503 UNAVAILABLE naming redis, with Retry-After", code, h.Get("Retry-After"), body)
	}
}
