package graph_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/llmsched/llm-scheduler/graph"
	"github.com/llmsched/llm-scheduler/internal/app"
	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/events"
)

// gatedStream is an OpenAI-compatible server whose one streamed answer
// sends the first chunks, then waits for the test before the rest.
type gatedStream struct {
	URL     string
	first   []string
	rest    []string
	release chan struct{}
}

func newGatedStream(t *testing.T, first, rest []string) *gatedStream {
	g := &gatedStream{first: first, rest: rest, release: make(chan struct{})}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		chunk := func(delta string) {
			b, _ := json.Marshal(map[string]any{"id": "1", "object": "chat.completion.chunk", "created": 1, "model": "m",
				"choices": []map[string]any{{"index": 0, "delta": map[string]any{"content": delta}}}})
			fmt.Fprintf(w, "data: %s\n\n", b)
			fl.Flush()
		}
		for _, c := range g.first {
			chunk(c)
		}
		select {
		case <-g.release:
		case <-r.Context().Done():
			return
		}
		for _, c := range g.rest {
			chunk(c)
		}
		fmt.Fprint(w, `data: {"id":"1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`+"\n\n")
		fmt.Fprint(w, "data: [DONE]\n\n")
	}))
	t.Cleanup(func() {
		select {
		case <-g.release:
		default:
			close(g.release)
		}
		s.Close()
	})
	g.URL = s.URL + "/v1"
	return g
}

type outputChunk struct {
	TaskID  gid
	Attempt int
	Seq     int
	Text    string
	Done    bool
}

// TestLateTaskOutputSubscriber: on an api-only process, while a separate
// worker process streams a task's answer, the task's output so far is
// readable (REST and GraphQL), and a taskOutput subscriber that joins
// mid-answer gets the text so far first, then the new chunks, each chunk
// once, in order, with nothing missing.
func TestLateTaskOutputSubscriber(t *testing.T) {
	t.Run("api and worker processes", func(t *testing.T) {
		sh := apptest.NewShared(t, nil)
		api := sh.Start(t, app.RoleAPI)
		sh.Start(t, app.RoleWorker)
		lateSubscriber(t, api)
	})
	t.Run("one process", func(t *testing.T) { lateSubscriber(t, apptest.New(t, nil)) })
}

func lateSubscriber(t *testing.T, api *apptest.Env) {
	g := newGatedStream(t, []string{"one ", "two ", "three "}, []string{"four ", "five"})
	m := api.CreateModel("streams", "openai", 1, map[string]any{"base_url": g.URL, "model": "m"})
	task := api.Submit(map[string]any{"model_id": m.ID, "type": "text-generation", "input": "count", "timeout_seconds": 60})

	// Running, the first three chunks streamed: REST shows them.
	const sofar = "one two three "
	assertOutputSoFar(t, api, task.ID, m.ID, sofar)

	// A subscriber joining now gets the text so far first...
	ws := mustDialWS(t, api, protoTransport, nil)
	ws.subscribe("o", `subscription($id: ID!) { taskOutput(id: $id) { taskID attempt seq text done } }`, map[string]any{"id": task.ID})
	var text strings.Builder
	var seqs []int
	read := func() (done bool) {
		kind, r := ws.next(30 * time.Second)
		if kind == "complete" {
			return true
		}
		if kind != "next" || len(r.Errors) > 0 {
			t.Fatalf("taskOutput: %s %+v", kind, r.Errors)
		}
		var c struct{ TaskOutput outputChunk }
		if err := json.Unmarshal(r.Data, &c); err != nil {
			t.Fatal(err)
		}
		o := c.TaskOutput
		if o.TaskID != taskGID(task.ID) || o.Attempt != 1 {
			t.Fatalf("chunk %+v, want task %d attempt 1", o, task.ID)
		}
		seqs = append(seqs, o.Seq)
		text.WriteString(o.Text)
		return false
	}
	for text.Len() < len(sofar) {
		if read() {
			t.Fatalf("taskOutput completed after %q", text.String())
		}
	}
	if text.String() != sofar {
		t.Fatalf("taskOutput sent %q first, want the text so far %q", text.String(), sofar)
	}
	// ...then the rest, live.
	close(g.release)
	for more := true; more; {
		more = !read()
	}
	final := api.WaitTask(task.ID, "completed", 30*time.Second)
	if want := "one two three four five"; final.Output != want || text.String() != want {
		t.Fatalf("subscriber got %q, stored %q, want %q", text.String(), final.Output, want)
	}
	for i, s := range seqs {
		if s != i+1 {
			t.Fatalf("chunk sequence %v: want 1, 2, 3, ... (no chunk twice, none missing)", seqs)
		}
	}
}

// assertOutputSoFar waits until task taskID runs with output sofar in REST,
// then checks the REST list of model modelID and GraphQL show the same.
func assertOutputSoFar(t *testing.T, api *apptest.Env, taskID, modelID int, sofar string) {
	t.Helper()
	var got apptest.Task
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		got = api.Task(taskID)
		if got.Status == "running" && got.Output == sofar {
			break
		}
		if time.Now().After(deadline) || got.Status != "pending" && got.Status != "running" {
			t.Fatalf("REST: task %s with output %q, want running with %q so far", got.Status, got.Output, sofar)
		}
	}
	var list struct {
		Data []struct {
			ID     int
			Output string
		}
	}
	api.Do("GET", fmt.Sprintf("/api/v1/tasks?model_id=%d", modelID), nil, &list)
	if len(list.Data) != 1 || list.Data[0].Output != sofar {
		t.Errorf("REST list: %+v, want the running task with %q", list.Data, sofar)
	}
	var q struct {
		Task struct{ Status, Output string }
	}
	mustData(t, api, "", `query($id: ID!) { task(id: $id) { status output } }`, map[string]any{"id": taskID}, &q)
	if q.Task.Status != "RUNNING" || q.Task.Output != sofar {
		t.Errorf("GraphQL task: %+v, want RUNNING with %q", q.Task, sofar)
	}
}

// overlapBus reads the output kept so far only after the rest of the
// answer was streamed: every chunk after the first three is then both in
// what was kept and on the live subscription taken before.
type overlapBus struct {
	*events.Bus
	g *gatedStream
}

func (b overlapBus) OutputSoFar(ctx context.Context, taskID, attempt int) ([]events.OutputChunk, error) {
	close(b.g.release)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		cs, err := b.Bus.OutputSoFar(ctx, taskID, attempt)
		if err != nil || len(cs) > 0 && cs[len(cs)-1].Done {
			return cs, err
		}
	}
	return nil, fmt.Errorf("task %d attempt %d never kept its last chunk", taskID, attempt)
}

type openAccess struct{}

func (openAccess) Allow(context.Context, domain.Permission) error { return nil }
func (openAccess) Owner(context.Context) *int                     { return nil }
func (openAccess) Submitter(context.Context) *int                 { return nil }

// TestTaskOutputChunksBothKeptAndLiveGoOutOnce: chunks published between
// the subscription and the read of what was kept arrive both ways; the
// subscriber gets each once.
func TestTaskOutputChunksBothKeptAndLiveGoOutOnce(t *testing.T) {
	sh := apptest.NewShared(t, nil)
	api := sh.Start(t, app.RoleAPI)
	sh.Start(t, app.RoleWorker)
	g := newGatedStream(t, []string{"one ", "two ", "three "}, []string{"four ", "five"})
	m := api.CreateModel("streams", "openai", 1, map[string]any{"base_url": g.URL, "model": "m"})
	task := api.Submit(map[string]any{"model_id": m.ID, "type": "text-generation", "input": "count", "timeout_seconds": 60})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		got := api.Task(task.ID)
		if got.Status == "running" && got.Output == "one two three " {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s with output %q, want running with the first three chunks", got.Status, got.Output)
		}
	}
	r := &graph.Resolver{Svc: api.App.Service, Bus: overlapBus{api.App.Bus, g}, Access: openAccess{}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ch, err := graph.TaskOutput(ctx, r, task.ID)
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	var seqs []int
	for c := range ch {
		seqs = append(seqs, c.Seq)
		text.WriteString(c.Text)
	}
	if ctx.Err() != nil {
		t.Fatalf("taskOutput did not end with the task (got %q)", text.String())
	}
	if want := "one two three four five"; text.String() != want {
		t.Fatalf("subscriber got %q (seqs %v), want %q", text.String(), seqs, want)
	}
	for i, s := range seqs {
		if s != i+1 {
			t.Fatalf("chunk sequence %v: want 1, 2, 3, ...", seqs)
		}
	}
}
