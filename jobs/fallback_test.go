package jobs_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/internal/providers/fakeopenai"
)

func fakeServer(t *testing.T) *fakeopenai.Server {
	t.Helper()
	s := fakeopenai.New()
	t.Cleanup(s.Close)
	return s
}

// createModelWithFallbacks registers an openai model on a fake server.
func createModelWithFallbacks(e *apptest.Env, name string, s *fakeopenai.Server, fallbacks []int) apptest.Model {
	e.T.Helper()
	var out struct {
		Data apptest.Model `json:"data"`
	}
	body := map[string]any{"name": name, "type": "openai", "max_workers": 2, "fallbacks": fallbacks,
		"config": map[string]any{"base_url": s.BaseURL(), "model": name}}
	if code := e.Do("POST", "/api/v1/models", body, &out); code != http.StatusCreated {
		e.T.Fatalf("create model %s: status %d", name, code)
	}
	return out.Data
}

func TestFallbackTakesOverWhenRetriesAreSpent(t *testing.T) {
	down, healthy := fakeServer(t), fakeServer(t)
	down.SetHandler(func(fakeopenai.Request) fakeopenai.Reply {
		return fakeopenai.Reply{Status: 503, ErrorMessage: "the engine is currently overloaded"}
	})
	healthy.SetHandler(func(r fakeopenai.Request) fakeopenai.Reply {
		return fakeopenai.Reply{Content: "from the fallback: " + r.LastUserMessage()}
	})
	e := apptest.New(t, nil)
	fb := createModelWithFallbacks(e, "healthy", healthy, nil)
	primary := createModelWithFallbacks(e, "primary", down, []int{fb.ID})

	tk := e.Submit(map[string]any{"model_id": primary.ID, "type": "text-generation", "input": "hello", "max_retries": 1})
	got := e.WaitTask(tk.ID, "", 30*time.Second)
	if got.Status != "completed" || got.Output != "from the fallback: hello" {
		t.Fatalf("task is %s with %q (error %q)", got.Status, got.Output, got.Error)
	}
	if got.ModelID != primary.ID {
		t.Errorf("task moved to model %d; it stays its own model's task", got.ModelID)
	}
	type try struct {
		Model  int
		Status string
		Kind   string
	}
	var tries []try
	for _, a := range got.AttemptHistory {
		tries = append(tries, try{a.ModelID, a.Status, a.ErrorKind})
	}
	want := []try{{primary.ID, "failed", "retryable"}, {primary.ID, "failed", "retryable"}, {fb.ID, "succeeded", ""}}
	if len(tries) != len(want) {
		t.Fatalf("attempts = %+v, want %+v", tries, want)
	}
	for i := range want {
		if tries[i] != want[i] {
			t.Errorf("attempt %d = %+v, want %+v", i+1, tries[i], want[i])
		}
	}
	if !strings.Contains(got.AttemptHistory[0].Error, "overloaded") {
		t.Errorf("attempt 1 error %q lost the provider's message", got.AttemptHistory[0].Error)
	}
	if n := len(down.Requests()); n != 2 {
		t.Errorf("primary got %d requests, want 2 (max_retries 1)", n)
	}
}

func TestFallbackNotUsedForPermanentErrorsAndExhaustsTheChain(t *testing.T) {
	primaryS, fbS := fakeServer(t), fakeServer(t)
	e := apptest.New(t, nil)
	fb := createModelWithFallbacks(e, "fb", fbS, nil)
	primary := createModelWithFallbacks(e, "primary", primaryS, []int{fb.ID})

	primaryS.Enqueue(fakeopenai.Reply{Status: 401, ErrorMessage: "Incorrect API key provided"})
	tk := e.Submit(map[string]any{"model_id": primary.ID, "type": "text-generation", "input": "x", "max_retries": 2})
	got := e.WaitTask(tk.ID, "", 30*time.Second)
	if got.Status != "failed" || len(got.AttemptHistory) != 1 || len(fbS.Requests()) != 0 {
		t.Fatalf("a permanent error: status %s, %d attempts, %d fallback requests; want failed at once on the primary",
			got.Status, len(got.AttemptHistory), len(fbS.Requests()))
	}
	if !strings.Contains(got.Error, "Incorrect API key provided") {
		t.Errorf("error %q lost the provider's message", got.Error)
	}

	// Both down: one attempt on each (max_retries 0), then the task fails.
	for _, s := range []*fakeopenai.Server{primaryS, fbS} {
		s.SetHandler(func(fakeopenai.Request) fakeopenai.Reply { return fakeopenai.Reply{Status: 500, ErrorMessage: "boom"} })
	}
	tk = e.Submit(map[string]any{"model_id": primary.ID, "type": "text-generation", "input": "y", "max_retries": 0})
	got = e.WaitTask(tk.ID, "", 30*time.Second)
	if got.Status != "failed" || len(got.AttemptHistory) != 2 ||
		got.AttemptHistory[0].ModelID != primary.ID || got.AttemptHistory[1].ModelID != fb.ID {
		t.Fatalf("all down: status %s, attempts %+v; want one failed attempt on each model", got.Status, got.AttemptHistory)
	}
}
