package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/llmsched/llm-scheduler/internal/apptest"
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
	var list struct {
		Data       []apptest.Task
		Pagination struct{ Total int }
	}
	if code := e.Do("GET", "/api/v1/tasks?caller=alice", nil, &list); code != http.StatusOK || len(list.Data) != 1 || list.Data[0].ID != alice.ID {
		t.Fatalf("list ?caller=alice: %d %+v", code, list.Data)
	}
	// The total counts alice's tasks, not every task (the counts by
	// status answer only a status filter).
	if list.Pagination.Total != 1 {
		t.Fatalf("list ?caller=alice: pagination.total = %d, want 1", list.Pagination.Total)
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

// TestPerCallerLoad: the overview's per-caller lines (GraphQL
// dashboardStats.perCaller, REST per_caller) count each key's running and
// queued tasks, with its weight, its part of the running tasks and the
// part its weight claims; a submitter sees only its own line.
func TestPerCallerLoad(t *testing.T) {
	a := setupAuth(t)
	admin := []string{"Authorization", "Bearer " + a.keys["admin"]}
	keys := loadTwoCallers(t, a, admin)
	const q = "{ dashboardStats { perCaller { caller weight running queued share fairShare } } }"
	read := func(key []string) map[string]callerLine {
		t.Helper()
		var gq struct {
			Data struct {
				DashboardStats struct{ PerCaller []callerLine }
			}
		}
		if code := a.Do("POST", "/graphql", map[string]any{"query": q}, &gq, key...); code != http.StatusOK {
			t.Fatalf("dashboardStats: %d", code)
		}
		out := map[string]callerLine{}
		for _, l := range gq.Data.DashboardStats.PerCaller {
			out[l.Caller] = l
		}
		return out
	}
	want := map[string]callerLine{
		"heavy": {Caller: "heavy", Weight: 3, Running: 2, Share: 1, FairShare: 0.75},
		"light": {Caller: "light", Weight: 1, Queued: 2, Share: 0, FairShare: 0.25},
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := read(admin)
		if len(got) == 2 && got["heavy"] == want["heavy"] && got["light"] == want["light"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("perCaller = %+v, want %+v", got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if own := read([]string{"Authorization", "Bearer " + keys["light"]}); len(own) != 1 || own["light"] != want["light"] {
		t.Fatalf("light's own view = %+v, want only its line", own)
	}
	assertRESTPerCaller(t, a, admin, keys["heavy"])
}

// callerLine is one line of GraphQL's dashboardStats.perCaller.
type callerLine struct {
	Caller    string
	Weight    int
	Running   int
	Queued    int
	Share     float64
	FairShare float64
}

// loadTwoCallers makes keys heavy (weight 3) and light (weight 1) and a
// two-slot model whose tasks run a minute: heavy's two tasks run, light's
// wait, and so does light's task on the offline model. It returns the
// keys by name.
func loadTwoCallers(t *testing.T, a *authEnv, admin []string) map[string]string {
	t.Helper()
	keys := map[string]string{}
	for name, weight := range map[string]int{"heavy": 3, "light": 1} {
		var created struct{ Data struct{ Key string } }
		if code := a.Do("POST", "/api/v1/apikeys", map[string]any{"name": name, "role": "submitter", "weight": weight}, &created, admin...); code != http.StatusCreated {
			t.Fatalf("create key %s: %d", name, code)
		}
		keys[name] = created.Data.Key
	}
	var m struct{ Data apptest.Model }
	if code := a.Do("POST", "/api/v1/models", map[string]any{"name": "slow-one", "type": "simulator", "max_workers": 2,
		"config": map[string]any{"latency_ms": 60000}}, &m, admin...); code != http.StatusCreated {
		t.Fatalf("create model: %d", code)
	}
	submit := func(name string, model int) {
		t.Helper()
		if code := a.Do("POST", "/api/v1/tasks", map[string]any{"model_id": model, "type": "text-generation", "input": "hi"}, nil,
			"Authorization", "Bearer "+keys[name]); code != http.StatusCreated {
			t.Fatalf("submit as %s: %d", name, code)
		}
	}
	submit("heavy", m.Data.ID) // the two slots: heavy's two tasks run,
	submit("heavy", m.Data.ID)
	submit("light", m.Data.ID) // light's wait,
	submit("light", a.modelID) // and so does its task on the offline model.
	return keys
}

// assertRESTPerCaller: REST's per_caller shows the same two lines to the
// admin, and only heavy's own to heavy.
func assertRESTPerCaller(t *testing.T, a *authEnv, admin []string, heavyKey string) {
	t.Helper()
	var rest struct {
		Data struct {
			PerCaller []struct {
				Caller    string
				APIKeyID  *int `json:"api_key_id"`
				Running   int
				Queued    int
				FairShare float64 `json:"fair_share"`
			} `json:"per_caller"`
		}
	}
	if code := a.Do("GET", "/api/v1/stats/dashboard", nil, &rest, admin...); code != http.StatusOK || len(rest.Data.PerCaller) != 2 ||
		rest.Data.PerCaller[0].Caller != "heavy" || rest.Data.PerCaller[0].Running != 2 || rest.Data.PerCaller[1].Queued != 2 ||
		rest.Data.PerCaller[1].FairShare != 0.25 || rest.Data.PerCaller[0].APIKeyID == nil {
		t.Fatalf("REST per_caller: %d %+v", code, rest.Data.PerCaller)
	}
	if code := a.Do("GET", "/api/v1/stats/dashboard", nil, &rest, "Authorization", "Bearer "+heavyKey); code != http.StatusOK ||
		len(rest.Data.PerCaller) != 1 || rest.Data.PerCaller[0].Caller != "heavy" {
		t.Fatalf("REST per_caller for heavy: %d %+v", code, rest.Data.PerCaller)
	}
}
