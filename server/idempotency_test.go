package server_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/llmsched/llm-scheduler/apptest"
	"github.com/llmsched/llm-scheduler/ent/task"
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
		stored, err := e.App.Store.Client.Task.Query().Where(task.IdempotencyKey(key)).Count(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if stored != 1 {
			t.Fatalf("round %d: %d tasks stored for one key, want 1", round, stored)
		}
	}
}
