package providers_test

// End-to-end: models on the fake server, tasks through the REST API, run
// by the real worker (apptest).

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/llmsched/llm-scheduler/ent/attempt"
	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/internal/providers/fakeopenai"
)

func TestE2EOpenAIStreamsAndStoresUsagePerAttemptAndTask(t *testing.T) {
	s := newFake(t)
	s.Enqueue(fakeopenai.Reply{Chunks: []string{"Bonjour", " le", " monde"}, Usage: &fakeopenai.Usage{PromptTokens: 12, CompletionTokens: 3}})
	e := apptest.New(t, nil)
	m := e.CreateModel("gpt", "openai", 2, map[string]any{"api_key": "sk-e2e-secret-98765", "base_url": s.BaseURL(), "model": "gpt-4o-mini", "max_tokens": float64(500)})
	if k, _ := m.Config["api_key"].(string); strings.Contains(k, "secret") {
		t.Errorf("the model's api_key is returned unmasked: %q", k)
	}
	tk := e.Submit(map[string]any{"model_id": m.ID, "type": "translation", "input": "Hello world", "params": map[string]any{"target_language": "French"}})
	got := e.WaitTask(tk.ID, "", 30*time.Second)
	if got.Status != "completed" || got.Output != "Bonjour le monde" {
		t.Fatalf("task %s %q (%s)", got.Status, got.Output, got.Error)
	}
	if got.PromptTokens != 12 || got.CompletionTokens != 3 {
		t.Errorf("task tokens = %d/%d, want 12/3", got.PromptTokens, got.CompletionTokens)
	}
	a, err := e.App.Store.Client.Attempt.Query().Where(attempt.TaskID(tk.ID)).Only(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if a.PromptTokens != 12 || a.CompletionTokens != 3 || a.ModelID != m.ID {
		t.Errorf("attempt tokens %d/%d on model %d", a.PromptTokens, a.CompletionTokens, a.ModelID)
	}
	if r := s.Requests()[0]; r.Body["stream"] != true || r.Body["max_tokens"] != float64(500) {
		t.Errorf("request body = %v", r.Body)
	}
}

func TestE2ECutStreamFailsTheAttemptKeepsPartialAndRetries(t *testing.T) {
	s := newFake(t)
	s.Enqueue(fakeopenai.Reply{Chunks: []string{"half ", "an ", "answer"}, CutAfter: 2})
	s.Enqueue(fakeopenai.Reply{Chunks: []string{"a ", "whole ", "answer"}})
	e := apptest.New(t, nil)
	m := e.CreateModel("gpt", "openai", 1, map[string]any{"base_url": s.BaseURL(), "model": "m"})
	got := e.WaitTask(e.Submit(map[string]any{"model_id": m.ID, "type": "text-generation", "input": "go"}).ID, "", 30*time.Second)
	if got.Status != "completed" || got.Output != "a whole answer" {
		t.Fatalf("task %s %q (%s)", got.Status, got.Output, got.Error)
	}
	if len(got.AttemptHistory) != 2 {
		t.Fatalf("attempts = %+v", got.AttemptHistory)
	}
	first := got.AttemptHistory[0]
	if first.Status != "failed" || first.ErrorKind != "retryable" || first.Output != "half an " {
		t.Errorf("cut attempt = %+v, want failed, retryable, partial %q", first, "half an ")
	}
}

func TestE2EPermanentErrorFailsAtOnceWithTheProvidersMessage(t *testing.T) {
	const key = "sk-e2e-leaky-key-123456"
	s := newFake(t)
	s.SetHandler(func(fakeopenai.Request) fakeopenai.Reply {
		return fakeopenai.Reply{Status: 401, ErrorMessage: "Incorrect API key provided: " + key, ErrorCode: "invalid_api_key"}
	})
	e := apptest.New(t, nil)
	m := e.CreateModel("gpt", "openai", 1, map[string]any{"base_url": s.BaseURL(), "model": "m", "api_key": key})
	got := e.WaitTask(e.Submit(map[string]any{"model_id": m.ID, "type": "text-generation", "input": "go", "max_retries": 3}).ID, "", 30*time.Second)
	if got.Status != "failed" || len(got.AttemptHistory) != 1 || got.AttemptHistory[0].ErrorKind != "permanent" {
		t.Fatalf("task %s after %d attempts: %+v", got.Status, len(got.AttemptHistory), got.AttemptHistory)
	}
	if !strings.Contains(got.Error, "Incorrect API key provided") || strings.Contains(got.Error, key) {
		t.Errorf("task error %q: want the provider's message without the key", got.Error)
	}
}

func TestE2ECancelMidStreamClosesTheUpstreamConnection(t *testing.T) {
	s := newFake(t)
	s.Enqueue(fakeopenai.Reply{Chunks: []string{"streaming "}, Hang: true})
	e := apptest.New(t, nil)
	m := e.CreateModel("gpt", "openai", 1, map[string]any{"base_url": s.BaseURL(), "model": "m"})
	tk := e.Submit(map[string]any{"model_id": m.ID, "type": "text-generation", "input": "go"})
	e.WaitTask(tk.ID, "running", 30*time.Second)
	for deadline := time.Now().Add(10 * time.Second); len(s.Requests()) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the request never reached the server")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code := e.Do("DELETE", fmt.Sprintf("/api/v1/tasks/%d", tk.ID), nil, nil); code != http.StatusOK {
		t.Fatalf("cancel: status %d", code)
	}
	select {
	case <-s.Disconnected:
	case <-time.After(15 * time.Second):
		t.Fatal("the upstream request was not closed after the cancel")
	}
	if got := e.WaitTask(tk.ID, "cancelled", 10*time.Second); len(got.AttemptHistory) != 1 {
		t.Errorf("attempts = %+v", got.AttemptHistory)
	}
}

func TestE2EMaxTokensAboveTheModelsIsRefused(t *testing.T) {
	s := newFake(t)
	e := apptest.New(t, nil)
	m := e.CreateModel("gpt", "openai", 1, map[string]any{"base_url": s.BaseURL(), "model": "m", "max_tokens": float64(256)})
	var eb apptest.ErrorBody
	code := e.Do("POST", "/api/v1/tasks", map[string]any{"model_id": m.ID, "type": "text-generation", "input": "x", "params": map[string]any{"max_tokens": 257}}, &eb)
	if code != http.StatusBadRequest || eb.Error.Code != "BAD_USER_INPUT" || eb.Error.Field != "params.max_tokens" || !strings.Contains(eb.Error.Message, "at most 256") {
		t.Errorf("status %d, error %+v", code, eb.Error)
	}
	if n := e.CountTasks(); n != 0 {
		t.Errorf("%d tasks stored for a refused request", n)
	}
	tk := e.Submit(map[string]any{"model_id": m.ID, "type": "text-generation", "input": "x", "params": map[string]any{"max_tokens": 256}})
	e.WaitTask(tk.ID, "completed", 30*time.Second)
}

func TestE2ELocalAndCustomModelsAndEmbeddings(t *testing.T) {
	s := newFake(t)
	host, port := hostPort(t, s)
	e := apptest.New(t, nil)
	local := e.CreateModel("llama", "local", 1, map[string]any{"host": host, "port": port, "model_path": "/models/llama-2-7b-chat"})
	custom := e.CreateModel("ollama-native", "custom", 1, map[string]any{
		"url": s.URL + "/api/generate", "body": map[string]any{"model": "llama3", "prompt": "{{prompt}}"},
		"stream": "ndjson", "chunk_path": "response", "done_path": "done", "response_path": "response",
		"prompt_tokens_path": "prompt_eval_count", "completion_tokens_path": "eval_count",
	})
	emb := e.CreateModel("embedder", "openai", 1, map[string]any{"base_url": s.BaseURL(), "model": "text-embedding-3-small"})

	lt := e.WaitTask(e.Submit(map[string]any{"model_id": local.ID, "type": "summarization", "input": "long text", "params": map[string]any{"length": "short"}}).ID, "", 30*time.Second)
	ct := e.WaitTask(e.Submit(map[string]any{"model_id": custom.ID, "type": "text-generation", "input": "hi \"there\""}).ID, "", 30*time.Second)
	et := e.WaitTask(e.Submit(map[string]any{"model_id": emb.ID, "type": "embedding", "input": "vector"}).ID, "", 30*time.Second)
	for _, tk := range []apptest.Task{lt, ct, et} {
		if tk.Status != "completed" {
			t.Fatalf("task %d is %s: %s", tk.ID, tk.Status, tk.Error)
		}
	}
	if lt.Output != "echo: long text" || ct.Output != "echo: hi \"there\"" {
		t.Errorf("outputs %q, %q", lt.Output, ct.Output)
	}
	if len(et.Embedding) != 4 || et.Embedding[0] != fakeopenai.Vector("vector")[0] {
		t.Errorf("embedding = %v", et.Embedding)
	}
	paths := map[string]string{}
	for _, r := range s.Requests() {
		paths[r.Path] = fmt.Sprint(r.Body["model"])
	}
	want := map[string]string{"/v1/chat/completions": "llama-2-7b-chat", "/api/generate": "llama3", "/v1/embeddings": "text-embedding-3-small"}
	for p, model := range want {
		if paths[p] != model {
			t.Errorf("request to %s asked for model %q, want %q", p, paths[p], model)
		}
	}
}
