package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/llmsched/llm-scheduler/apptest"
)

// Without auth, a task records the caller label of its request, or
// "anonymous"; REST and GraphQL show it and the REST list filters by it.
func TestCallerLabelWithoutAuth(t *testing.T) {
	e := apptest.New(t, nil)
	m := e.Simulator("caller-sim", 1, map[string]any{"latency_ms": 1})
	alice := e.Submit(map[string]any{"model_id": m.ID, "type": "text-generation", "input": "hi", "caller": "alice"})
	anon := e.Submit(map[string]any{"model_id": m.ID, "type": "text-generation", "input": "hi"})
	if alice.Caller != "alice" || anon.Caller != "anonymous" || alice.APIKeyID != nil {
		t.Fatalf("callers = %q (key %v), %q; want alice, anonymous", alice.Caller, alice.APIKeyID, anon.Caller)
	}
	if got := e.Task(alice.ID); got.Caller != "alice" {
		t.Fatalf("detail caller = %q", got.Caller)
	}
	var list struct{ Data []apptest.Task }
	if code := e.Do("GET", "/api/v1/tasks?caller=alice", nil, &list); code != http.StatusOK || len(list.Data) != 1 || list.Data[0].ID != alice.ID {
		t.Fatalf("list ?caller=alice: %d %+v", code, list.Data)
	}

	var gq struct {
		Data struct {
			CreateTask struct{ Caller string }
			Task       struct{ Caller string }
		}
		Errors []any
	}
	q := fmt.Sprintf(`mutation { createTask(input: {modelID: %d, type: TEXT_GENERATION, input: "x", caller: "bob"}) { caller } }`, m.ID)
	if code := e.Do("POST", "/graphql", map[string]any{"query": q}, &gq); code != http.StatusOK || gq.Data.CreateTask.Caller != "bob" {
		t.Fatalf("graphql createTask caller: %d %+v", code, gq)
	}
	q = fmt.Sprintf(`{ task(id: %d) { caller } }`, alice.ID)
	if code := e.Do("POST", "/graphql", map[string]any{"query": q}, &gq); code != http.StatusOK || gq.Data.Task.Caller != "alice" {
		t.Fatalf("graphql task caller: %d %+v", code, gq)
	}

	before := e.CountTasks()
	for _, bad := range []string{" alice", strings.Repeat("x", 129), "a\x01b"} {
		var eb apptest.ErrorBody
		code := e.Do("POST", "/api/v1/tasks", map[string]any{"model_id": m.ID, "type": "text-generation", "input": "hi", "caller": bad}, &eb)
		if code != http.StatusBadRequest || eb.Error.Field != "caller" {
			t.Fatalf("caller %q: %d %+v, want 400 naming caller", bad, code, eb)
		}
	}
	if n := e.CountTasks(); n != before {
		t.Fatalf("bad callers wrote %d tasks", n-before)
	}
}

// With auth on, the key is the caller: its id and name are recorded, and a
// caller label beside it is refused.
func TestCallerIsTheAPIKey(t *testing.T) {
	a := setupAuth(t)
	id := a.submit(t, "submitter")
	var out struct{ Data apptest.Task }
	if code := a.Do("GET", fmt.Sprintf("/api/v1/tasks/%d", id), nil, &out, "Authorization", "Bearer "+a.keys["admin"]); code != http.StatusOK {
		t.Fatalf("get task: %d", code)
	}
	if out.Data.Caller != "submitter key" || out.Data.APIKeyID == nil || *out.Data.APIKeyID != a.keyIDs["submitter"] {
		t.Fatalf("caller %q key %v, want %q key %d", out.Data.Caller, out.Data.APIKeyID, "submitter key", a.keyIDs["submitter"])
	}
	var eb apptest.ErrorBody
	body := map[string]any{"model_id": a.modelID, "type": "text-generation", "input": "hi", "caller": "someone-else"}
	if code := a.Do("POST", "/api/v1/tasks", body, &eb, "Authorization", "Bearer "+a.keys["submitter"]); code != http.StatusBadRequest || eb.Error.Field != "caller" {
		t.Fatalf("caller label with a key: %d %+v, want 400 naming caller", code, eb)
	}
}
