//go:build conformance

package conformance_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/llmsched/llm-scheduler/internal/apptest"
)

// mockLLM is the root URL of the running mock-llm (without /v1).
func mockLLM(t *testing.T) string {
	t.Helper()
	u := os.Getenv("LLMSCHED_MOCK_LLM_URL")
	if u == "" {
		t.Fatal("LLMSCHED_MOCK_LLM_URL is not set: run scripts/ci.d/45-provider-conformance.sh")
	}
	return strings.TrimRight(u, "/")
}

// TestTaskTypesAgainstMockLLM: every task type completes against the
// third-party server, streamed (openai models) and plain (a custom model
// on the same endpoint), with the answer, token counts and their source.
func TestTaskTypesAgainstMockLLM(t *testing.T) {
	base := mockLLM(t)
	e := apptest.New(t, nil)
	chat := e.CreateModel("mock-chat", "openai", 2, map[string]any{"base_url": base + "/v1", "model": "gpt-4o-mini", "api_key": "sk-conformance-0123456789"})
	plain := e.CreateModel("mock-plain", "custom", 2, map[string]any{
		"url":           base + "/v1/chat/completions",
		"body":          map[string]any{"model": "gpt-4o-mini", "messages": "{{messages}}"},
		"response_path": "choices.0.message.content", "prompt_tokens_path": "usage.prompt_tokens", "completion_tokens_path": "usage.completion_tokens",
	})
	embed := e.CreateModel("mock-embed", "openai", 1, map[string]any{"base_url": base + "/v1", "model": "text-embedding-3-small"})
	for _, tt := range []struct {
		desc   string
		model  apptest.Model
		task   map[string]any
		output string
		source string
	}{
		{"text-generation, streamed", chat, map[string]any{"type": "text-generation", "input": "Write a haiku about queues"}, "Write a haiku about queues", "estimated"},
		{"translation, streamed", chat, map[string]any{"type": "translation", "input": "Hello world", "params": map[string]any{"target_language": "French"}}, "Hello world", "estimated"},
		{"summarization, streamed", chat, map[string]any{"type": "summarization", "input": "A long text to shorten"}, "A long text to shorten", "estimated"},
		{"custom, streamed", chat, map[string]any{"type": "custom", "input": "x", "params": map[string]any{"messages": []map[string]any{{"role": "user", "content": "custom conversation"}}}}, "custom conversation", "estimated"},
		{"text-generation, plain JSON", plain, map[string]any{"type": "text-generation", "input": "no stream here"}, "no stream here", "reported"},
		{"embedding", embed, map[string]any{"type": "embedding", "input": "a vector please"}, "", "reported"},
	} {
		t.Run(tt.desc, func(t *testing.T) {
			tt.task["model_id"] = tt.model.ID
			got := e.WaitTask(e.Submit(tt.task).ID, "", 60*time.Second)
			if got.Status != "completed" || got.Output != tt.output {
				t.Fatalf("task %s %q (%s), want completed %q", got.Status, got.Output, got.Error, tt.output)
			}
			if tt.model.ID == embed.ID && len(got.Embedding) != 3 {
				t.Errorf("embedding %v, want mock-llm's 3 numbers", got.Embedding)
			}
			if src := tokenSource(t, e, got.ID); src != tt.source {
				t.Errorf("token_source %q, want %q", src, tt.source)
			}
		})
	}
}

// TestErrorShapesAgainstMockLLM: each error shape fails the task with one
// clear message and the right kind, retried only where a retry can work.
func TestErrorShapesAgainstMockLLM(t *testing.T) {
	base := mockLLM(t)
	e := apptest.New(t, nil)
	chat := e.CreateModel("mock-chat", "openai", 2, map[string]any{"base_url": base + "/v1", "model": "gpt-4o-mini"})
	embed := e.CreateModel("mock-embed", "openai", 2, map[string]any{"base_url": base + "/v1", "model": "nomic-embed-text"})
	noV1 := e.CreateModel("mock-no-v1", "openai", 1, map[string]any{"base_url": base, "model": "gpt-4o-mini"})
	for _, tt := range []struct {
		desc     string
		model    apptest.Model
		typ      string
		input    string
		kind     string
		attempts int
		message  string
	}{
		{"bad key, in the stream", chat, "text-generation", "error-401", "permanent", 1, "Incorrect API key provided"},
		{"rate limited, in the stream", chat, "text-generation", "error-429", "rate_limited", 2, "Rate limit reached for requests (rate_limit_exceeded)"},
		{"server error, in the stream", chat, "text-generation", "error-500", "retryable", 2, "The server had an error while processing your request."},
		{"wrong base_url (no /v1)", noV1, "text-generation", "hello", "permanent", 1, "Not Found: Cannot POST /chat/completions (POST " + base + "/chat/completions)"},
		{"model not pulled (Ollama's shape)", embed, "embedding", "error-ollama", "permanent", 1, "permanent (HTTP 400): model nomic-embed-text not found, try pulling it first"},
		{"validation (FastAPI's 422)", embed, "embedding", "error-422", "permanent", 1, "permanent (HTTP 422): body.encoding_format: Field required"},
		{"server error (Express's shape)", embed, "embedding", "error-500", "retryable", 2, "retryable (HTTP 500): Internal Server Error: embedding worker crashed"},
	} {
		t.Run(tt.desc, func(t *testing.T) {
			got := e.WaitTask(e.Submit(map[string]any{"model_id": tt.model.ID, "type": tt.typ, "input": tt.input, "max_retries": 1}).ID, "", 60*time.Second)
			if got.Status != "failed" || len(got.AttemptHistory) != tt.attempts {
				t.Fatalf("task %s after %d attempts (%s), want failed after %d", got.Status, len(got.AttemptHistory), got.Error, tt.attempts)
			}
			for _, a := range got.AttemptHistory {
				if a.ErrorKind != tt.kind || !strings.Contains(a.Error, tt.message) {
					t.Errorf("attempt %d: %s %q, want %s with %q", a.Number, a.ErrorKind, a.Error, tt.kind, tt.message)
				}
			}
			if !strings.Contains(got.Error, tt.message) || strings.Contains(got.Error, "unmarshal") {
				t.Errorf("task error %q, want one clear message with %q", got.Error, tt.message)
			}
		})
	}
}

func tokenSource(t *testing.T, e *apptest.Env, id int) string {
	t.Helper()
	var out struct {
		Data struct {
			TokenSource string `json:"token_source"`
		}
	}
	e.Do("GET", fmt.Sprintf("/api/v1/tasks/%d", id), nil, &out)
	return out.Data.TokenSource
}
