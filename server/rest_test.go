package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/internal/config"
)

func TestRESTEndToEnd(t *testing.T) {
	e := apptest.New(t, nil)
	m := e.Simulator("rest-sim", 2, map[string]any{"latency_ms": 10, "output_tokens": 4})

	var health map[string]any
	if code := e.Do("GET", "/api/v1/system/health", nil, &health); code != http.StatusOK || health["status"] != "ok" {
		t.Fatalf("health: %d %v", code, health)
	}
	for _, dep := range []string{"database", "redis"} {
		if d, _ := health[dep].(map[string]any); d["ok"] != true {
			t.Fatalf("health.%s = %v", dep, health[dep])
		}
	}

	created := e.Submit(map[string]any{"model_id": m.ID, "type": "translation", "input": "bonjour", "priority": 3,
		"params": map[string]any{"target_language": "English"}})
	if created.Status != "pending" || created.Priority != 3 || created.Type != "translation" || created.Input != "bonjour" {
		t.Fatalf("created = %+v", created)
	}
	done := e.WaitTask(created.ID, "completed", 30*time.Second)
	if done.Output == "" || done.CompletionTokens != 4 || done.StartedAt == nil || done.FinishedAt == nil || len(done.AttemptHistory) != 1 {
		t.Fatalf("completed task = %+v", done)
	}
	emb := e.Submit(map[string]any{"model_id": m.ID, "type": "embedding", "input": "vector me"})
	if got := e.WaitTask(emb.ID, "completed", 30*time.Second); len(got.Embedding) == 0 {
		t.Fatalf("embedding task stored no vector: %+v", got)
	}

	var list struct {
		Data       []apptest.Task `json:"data"`
		Pagination struct {
			Page, PageSize, Total int
		} `json:"pagination"`
	}
	if code := e.Do("GET", "/api/v1/tasks?page=1&page_size=1&status=completed", nil, &list); code != http.StatusOK {
		t.Fatalf("list: %d", code)
	}
	if len(list.Data) != 1 || list.Pagination.Total != 2 || list.Data[0].Status != "completed" {
		t.Fatalf("list = %+v", list)
	}
	if code := e.Do("GET", fmt.Sprintf("/api/v1/tasks?model_id=%d&type=embedding&priority=2", m.ID), nil, &list); code != http.StatusOK || len(list.Data) != 1 || list.Data[0].ID != emb.ID {
		t.Fatalf("filtered list: %d %+v", code, list.Data)
	}

	var models struct{ Data []apptest.Model }
	if code := e.Do("GET", "/api/v1/models", nil, &models); code != http.StatusOK {
		t.Fatalf("models: %d", code)
	}
	found := false
	for _, x := range models.Data {
		found = found || x.ID == m.ID
	}
	if !found {
		t.Fatalf("model %d not listed: %+v", m.ID, models.Data)
	}

	assertTwoCompletedToday(t, e)
}

// assertTwoCompletedToday: the dashboard stats and the stats by date count
// the two tasks completed today, all of those that ran.
func assertTwoCompletedToday(t *testing.T, e *apptest.Env) {
	t.Helper()
	var stats struct {
		Data struct {
			TotalTasks int            `json:"total_tasks"`
			ByStatus   map[string]int `json:"by_status"`
			Success    float64        `json:"success_rate"`
		}
	}
	if code := e.Do("GET", "/api/v1/stats/dashboard", nil, &stats); code != http.StatusOK || stats.Data.ByStatus["completed"] != 2 || stats.Data.Success != 1 {
		t.Fatalf("dashboard stats: %+v", stats.Data)
	}
	var days struct {
		Data []struct {
			Date      string
			Total     int
			Completed int
		}
	}
	if code := e.Do("GET", "/api/v1/stats/tasks/date?days=7", nil, &days); code != http.StatusOK || len(days.Data) != 7 || days.Data[6].Completed != 2 {
		t.Fatalf("stats by date: %+v", days.Data)
	}
	if days.Data[6].Date != time.Now().UTC().Format("2006-01-02") {
		t.Fatalf("last day = %s", days.Data[6].Date)
	}
}

func TestModelSecretsAreMasked(t *testing.T) {
	e := apptest.New(t, nil)
	const key = "sk-test-1234567890abcdef"
	m := e.CreateModel("gpt", "openai", 1, map[string]any{"api_key": key, "base_url": "http://127.0.0.1:1/v1", "model": "gpt-3.5-turbo"})
	if m.Config["api_key"] == key {
		t.Fatalf("api_key returned in clear: %v", m.Config)
	}
	var one struct{ Data apptest.Model }
	e.Do("GET", fmt.Sprintf("/api/v1/models/%d", m.ID), nil, &one)
	if one.Data.Config["api_key"] != "...cdef" {
		t.Fatalf("masked api_key = %v", one.Data.Config["api_key"])
	}
}

// TestBadInputWritesNothing: every malformed request gets a 400 naming the
// field (413 for an oversized body), and the task count does not change.
func TestBadInputWritesNothing(t *testing.T) {
	e := apptest.New(t, func(c *config.Config) {
		c.Queue.MaxInputBytes = 1024
		c.Server.MaxBodyBytes = 64 << 10
	})
	m := e.Simulator("bad-input", 1, map[string]any{})
	gone := e.Simulator("deleted", 1, map[string]any{})
	if code := e.Do("DELETE", fmt.Sprintf("/api/v1/models/%d", gone.ID), nil, nil); code != http.StatusOK {
		t.Fatalf("delete model: %d", code)
	}
	cases := badInputCases(m.ID, gone.ID)
	tasks := e.CountTasks()
	var models struct{ Data []apptest.Model }
	e.Do("GET", "/api/v1/models", nil, &models)
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			var eb apptest.ErrorBody
			code := e.Do(tc.method, tc.path, tc.body, &eb)
			if code != tc.status {
				t.Fatalf("status = %d, want %d (%+v)", code, tc.status, eb)
			}
			if eb.Error.Code == "" || eb.Error.Message == "" {
				t.Fatalf("error body = %+v, want a code and a message", eb)
			}
			if tc.field != "" && eb.Error.Field != tc.field {
				t.Fatalf("field = %q, want %q (message %q)", eb.Error.Field, tc.field, eb.Error.Message)
			}
			if tc.field != "" && !strings.Contains(eb.Error.Message, tc.field) {
				t.Fatalf("message %q does not name %q", eb.Error.Message, tc.field)
			}
		})
	}
	if got := e.CountTasks(); got != tasks {
		t.Fatalf("bad input wrote tasks: %d -> %d", tasks, got)
	}
	var after struct{ Data []apptest.Model }
	e.Do("GET", "/api/v1/models", nil, &after)
	if len(after.Data) != len(models.Data) {
		t.Fatalf("bad input wrote models: %d -> %d", len(models.Data), len(after.Data))
	}
}

// badInputCase is a malformed request and the status and field its
// refusal names ("" for none).
type badInputCase struct {
	desc, method, path, body string
	status                   int
	field                    string
}

// badInputCases are TestBadInputWritesNothing's requests, against model
// modelID (a simulator) and goneID (a deleted model).
func badInputCases(modelID, goneID int) []badInputCase {
	valid := func(over string) string {
		return fmt.Sprintf(`{"model_id": %d, "type": "text-generation", "input": "hi", "priority": 2%s}`, modelID, over)
	}
	return []badInputCase{
		{"malformed JSON", "POST", "/api/v1/tasks", `{"model_id": 1,`, 400, "body"},
		{"not an object", "POST", "/api/v1/tasks", `[1,2]`, 400, "body"},
		{"empty body", "POST", "/api/v1/tasks", ``, 400, "body"},
		{"wrong type for model_id", "POST", "/api/v1/tasks", `{"model_id": "one", "type": "text-generation", "input": "x"}`, 400, "model_id"},
		{"wrong type for priority", "POST", "/api/v1/tasks", valid(`, "priority": "high"`), 400, "priority"},
		{"unknown field", "POST", "/api/v1/tasks", valid(`, "priorty": 3`), 400, "priorty"},
		{"missing model", "POST", "/api/v1/tasks", `{"type": "text-generation", "input": "x"}`, 400, "model_id"},
		{"unknown model", "POST", "/api/v1/tasks", `{"model_id": 999999, "type": "text-generation", "input": "x"}`, 400, "model_id"},
		{"deleted model", "POST", "/api/v1/tasks", fmt.Sprintf(`{"model_id": %d, "type": "text-generation", "input": "x"}`, goneID), 400, "model_id"},
		{"invalid type", "POST", "/api/v1/tasks", fmt.Sprintf(`{"model_id": %d, "type": "poetry", "input": "x"}`, modelID), 400, "type"},
		{"priority out of range", "POST", "/api/v1/tasks", fmt.Sprintf(`{"model_id": %d, "type": "custom", "input": "x", "priority": 7}`, modelID), 400, "priority"},
		{"empty input", "POST", "/api/v1/tasks", fmt.Sprintf(`{"model_id": %d, "type": "summarization", "input": "   "}`, modelID), 400, "input"},
		{"input over limit", "POST", "/api/v1/tasks", fmt.Sprintf(`{"model_id": %d, "type": "text-generation", "input": "%s"}`, modelID, strings.Repeat("a", 1025)), 400, "input"},
		{"body over limit", "POST", "/api/v1/tasks", fmt.Sprintf(`{"model_id": %d, "type": "text-generation", "input": "%s"}`, modelID, strings.Repeat("a", 70<<10)), 413, ""},
		{"translation without target", "POST", "/api/v1/tasks", fmt.Sprintf(`{"model_id": %d, "type": "translation", "input": "x"}`, modelID), 400, "params.target_language"},
		{"bad max_retries", "POST", "/api/v1/tasks", valid(`, "max_retries": -1`), 400, "max_retries"},
		{"bad temperature", "POST", "/api/v1/tasks", valid(`, "params": {"temperature": 9}`), 400, "params.temperature"},
		{"page_size 0", "GET", "/api/v1/tasks?page_size=0", "", 400, "page_size"},
		{"page_size 10000", "GET", "/api/v1/tasks?page_size=10000", "", 400, "page_size"},
		{"page 0", "GET", "/api/v1/tasks?page=0", "", 400, "page"},
		{"page past any offset", "GET", "/api/v1/tasks?page=9223372036854775807", "", 400, "page"},
		{"page overflowing int", "GET", "/api/v1/tasks?page=99999999999999999999", "", 400, "page"},
		{"bad status filter", "GET", "/api/v1/tasks?status=done", "", 400, "status"},
		{"bad days", "GET", "/api/v1/stats/tasks/date?days=0", "", 400, "days"},
		{"bad id", "GET", "/api/v1/tasks/abc", "", 400, "id"},
		{"unknown task", "GET", "/api/v1/tasks/123456789", "", 404, ""},
		{"model without name", "POST", "/api/v1/models", `{"type": "simulator", "config": {}}`, 400, "name"},
		{"model bad type", "POST", "/api/v1/models", `{"name": "x", "type": "oracle"}`, 400, "type"},
		{"model max_workers 0", "POST", "/api/v1/models", `{"name": "x", "type": "simulator", "max_workers": 0}`, 400, "max_workers"},
		{"model bad config", "POST", "/api/v1/models", `{"name": "x", "type": "simulator", "config": {"fail_rate": 2}}`, 400, "config"},
		{"model bad status", "PUT", fmt.Sprintf("/api/v1/models/%d/status", modelID), `{"status": "sleeping"}`, 400, "status"},
		{"unknown model status", "PUT", "/api/v1/models/424242/status", `{"status": "online"}`, 404, ""},
	}
}

func TestDeleteModelRefusedWhileBusy(t *testing.T) {
	e := apptest.New(t, nil)
	m := e.Simulator("busy", 1, map[string]any{"latency_ms": 60000})
	task := e.Submit(map[string]any{"model_id": m.ID, "type": "text-generation", "input": "x"})
	var eb apptest.ErrorBody
	if code := e.Do("DELETE", fmt.Sprintf("/api/v1/models/%d", m.ID), nil, &eb); code != http.StatusConflict {
		t.Fatalf("delete busy model: %d %+v", code, eb)
	}
	if code := e.Do("DELETE", fmt.Sprintf("/api/v1/tasks/%d", task.ID), nil, nil); code != http.StatusOK {
		t.Fatalf("cancel: %d", code)
	}
	if code := e.Do("DELETE", fmt.Sprintf("/api/v1/models/%d", m.ID), nil, nil); code != http.StatusOK {
		t.Fatalf("delete idle model: %d", code)
	}
	if code := e.Do("GET", fmt.Sprintf("/api/v1/models/%d", m.ID), nil, nil); code != http.StatusNotFound {
		t.Fatalf("deleted model still served: %d", code)
	}
}
