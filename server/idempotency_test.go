package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/llmsched/llm-scheduler/ent/task"
	"github.com/llmsched/llm-scheduler/internal/apptest"
)

type created struct {
	Data apptest.Task `json:"data"`
}

// TestIdempotencyKey: a repeated create with the same Idempotency-Key and
// body returns the first task (201, same id, same body), never a second
// one; the same key with a different body is 409 CONFLICT and writes
// nothing; a different key creates a new task.
func TestIdempotencyKey(t *testing.T) {
	e := apptest.New(t, nil)
	m := e.Simulator("idem", 1, map[string]any{"latency_ms": 1, "output_tokens": 1})
	body := map[string]any{"model_id": m.ID, "type": "text-generation", "input": "once", "priority": 2}

	var first, again created
	if code := e.Do("POST", "/api/v1/tasks", body, &first, "Idempotency-Key", "order-42"); code != http.StatusCreated {
		t.Fatalf("first create: status %d, want 201", code)
	}
	if code := e.Do("POST", "/api/v1/tasks", body, &again, "Idempotency-Key", "order-42"); code != http.StatusCreated {
		t.Fatalf("repeat: status %d, want 201 (a replay answers like the first request)", code)
	}
	if again.Data.ID != first.Data.ID || again.Data.Input != "once" {
		t.Fatalf("repeat returned task %d (%q), want the first task %d", again.Data.ID, again.Data.Input, first.Data.ID)
	}

	// The replay still returns the task after it ran.
	e.WaitTask(first.Data.ID, "completed", 30e9)
	if code := e.Do("POST", "/api/v1/tasks", body, &again, "Idempotency-Key", "order-42"); code != http.StatusCreated || again.Data.ID != first.Data.ID {
		t.Fatalf("repeat after completion: status %d, task %d, want 201 and task %d", code, again.Data.ID, first.Data.ID)
	}
	if again.Data.Status != "completed" {
		t.Fatalf("repeat after completion shows status %q, want the task as it is now (completed)", again.Data.Status)
	}

	tests := []struct {
		name string
		body map[string]any
	}{
		{"other input", map[string]any{"model_id": m.ID, "type": "text-generation", "input": "twice", "priority": 2}},
		{"other priority", map[string]any{"model_id": m.ID, "type": "text-generation", "input": "once", "priority": 3}},
		{"other params", map[string]any{"model_id": m.ID, "type": "text-generation", "input": "once", "priority": 2, "params": map[string]any{"max_tokens": 5}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var eb apptest.ErrorBody
			if code := e.Do("POST", "/api/v1/tasks", tc.body, &eb, "Idempotency-Key", "order-42"); code != http.StatusConflict {
				t.Fatalf("status %d, want 409", code)
			}
			if eb.Error.Code != "CONFLICT" {
				t.Fatalf("error code %q, want CONFLICT (%s)", eb.Error.Code, eb.Error.Message)
			}
		})
	}
	if n := e.CountTasks(); n != 1 {
		t.Fatalf("%d tasks stored, want 1", n)
	}

	var other created
	if code := e.Do("POST", "/api/v1/tasks", body, &other, "Idempotency-Key", "order-43"); code != http.StatusCreated || other.Data.ID == first.Data.ID {
		t.Fatalf("new key: status %d, task %d; want 201 and a new task", code, other.Data.ID)
	}
	var eb apptest.ErrorBody
	long := make([]byte, 256)
	for i := range long {
		long[i] = 'k'
	}
	if code := e.Do("POST", "/api/v1/tasks", body, &eb, "Idempotency-Key", string(long)); code != http.StatusBadRequest || eb.Error.Field != "idempotency_key" {
		t.Fatalf("256-byte key: status %d field %q, want 400 naming idempotency_key", code, eb.Error.Field)
	}
}

// TestIdempotencyKeyConcurrentDuplicates: many identical requests at once
// store one task, and every one of them answers with it.
func TestIdempotencyKeyConcurrentDuplicates(t *testing.T) {
	e := apptest.New(t, nil)
	m := e.Simulator("idem-race", 1, map[string]any{"latency_ms": 1, "output_tokens": 1})
	const n = 16
	for round := range 3 {
		key := fmt.Sprintf("burst-%d", round)
		body := map[string]any{"model_id": m.ID, "type": "summarization", "input": "same " + key}
		ids := make([]int, n)
		codes := make([]int, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var out created
				codes[i] = e.Do("POST", "/api/v1/tasks", body, &out, "Idempotency-Key", key)
				ids[i] = out.Data.ID
			}()
		}
		wg.Wait()
		for i := range n {
			if codes[i] != http.StatusCreated || ids[i] != ids[0] || ids[0] == 0 {
				t.Fatalf("round %d: request %d got status %d task %d; want 201 and task %d for all", round, i, codes[i], ids[i], ids[0])
			}
		}
		// Without auth every caller is "anon"; the stored key carries it.
		stored, err := e.App.Store.Client.Task.Query().Where(task.IdempotencyKey("anon:" + key)).Count(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if stored != 1 {
			t.Fatalf("round %d: %d tasks stored for one key, want 1", round, stored)
		}
	}
}

// An Idempotency-Key belongs to its caller: another key sending the same
// Idempotency-Key (with the same body or another) creates its own task and
// learns nothing of the first caller's, over REST and GraphQL.
func TestIdempotencyKeysAreScopedToTheCaller(t *testing.T) {
	a := setupAuth(t)
	second, err := a.svc.Create(context.Background(), "second submitter", "submitter")
	if err != nil {
		t.Fatal(err)
	}
	keyA, keyB := a.keys["submitter"], second.Secret
	body := map[string]any{"model_id": a.modelID, "type": "text-generation", "input": "A's secret input"}
	var first, replay, other created
	if code := a.Do("POST", "/api/v1/tasks", body, &first, "Authorization", "Bearer "+keyA, "Idempotency-Key", "shared-1"); code != http.StatusCreated {
		t.Fatalf("A creates: %d", code)
	}
	if code := a.Do("POST", "/api/v1/tasks", body, &replay, "Authorization", "Bearer "+keyA, "Idempotency-Key", "shared-1"); code != http.StatusCreated || replay.Data.ID != first.Data.ID {
		t.Fatalf("A's replay: %d task %d, want 201 task %d", code, replay.Data.ID, first.Data.ID)
	}
	if code := a.Do("POST", "/api/v1/tasks", body, &other, "Authorization", "Bearer "+keyB, "Idempotency-Key", "shared-1"); code != http.StatusCreated || other.Data.ID == first.Data.ID {
		t.Fatalf("B with A's key and body: %d task %d, want 201 and a task of its own (A's is %d)", code, other.Data.ID, first.Data.ID)
	}
	diff := map[string]any{"model_id": a.modelID, "type": "text-generation", "input": "B's input"}
	status, _, raw := rawReq(t, a, "POST", "/api/v1/tasks", diff, "Authorization", "Bearer "+keyB, "Idempotency-Key", "shared-2")
	if status != http.StatusCreated {
		t.Fatalf("B's own key: %d %s", status, raw)
	}
	status, _, raw = rawReq(t, a, "POST", "/api/v1/tasks", diff, "Authorization", "Bearer "+keyB, "Idempotency-Key", "shared-1")
	if status != http.StatusConflict || !strings.Contains(raw, fmt.Sprintf("task %d ", other.Data.ID)) ||
		strings.Contains(raw, fmt.Sprintf("task %d ", first.Data.ID)) {
		t.Fatalf("B reusing its own key with another body: %d %s, want 409 about B's task", status, raw)
	}
	if strings.Contains(raw, "A's secret") {
		t.Fatalf("B's conflict leaks A's task: %s", raw)
	}

	// GraphQL: the same rule.
	q := fmt.Sprintf(`mutation { createTask(input: {modelID: "%d", type: TEXT_GENERATION, input: "A's secret input", idempotencyKey: "shared-1"}) { id input } }`, a.modelID)
	var gql struct {
		Data struct {
			CreateTask struct {
				ID    string `json:"id"`
				Input string `json:"input"`
			} `json:"createTask"`
		} `json:"data"`
		Errors []any `json:"errors"`
	}
	if code := a.Do("POST", "/graphql", map[string]any{"query": q}, &gql, "Authorization", "Bearer "+second.Secret); code != http.StatusOK || len(gql.Errors) > 0 {
		t.Fatalf("GraphQL createTask by B: %d %v", code, gql.Errors)
	}
	if gql.Data.CreateTask.ID == fmt.Sprint(first.Data.ID) || gql.Data.CreateTask.ID == "" {
		t.Fatalf("GraphQL: B got task %q with A's idempotency key (A's is %d)", gql.Data.CreateTask.ID, first.Data.ID)
	}
}

func rawReq(t *testing.T, a *authEnv, method, path string, body any, headers ...string) (int, http.Header, string) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return raw(t, method, a.URL+path, string(b), headers...)
}
