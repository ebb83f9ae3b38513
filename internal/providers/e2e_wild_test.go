package providers_test

// End-to-end checks of what real servers do on the error paths
// (docs/providers.md, "Servers in the wild"):
// models on the fake server, tasks through the REST API, run by the real
// worker.

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/internal/providers/fakeopenai"
)

// TestE2EShortRetryAfterIsUsed: a 429 with Retry-After: 1 is retried after
// one second, for the task and for the model's pause, not after
// queue.retry_delay (60 s here).
func TestE2EShortRetryAfterIsUsed(t *testing.T) {
	s := newFake(t)
	s.Enqueue(fakeopenai.Reply{Status: 429, ErrorMessage: "Rate limit reached", Header: map[string]string{"Retry-After": "1"}})
	s.Enqueue(fakeopenai.Reply{Chunks: []string{"after ", "the wait"}})
	e := apptest.New(t, func(c *config.Config) {
		c.Queue.RetryDelay = config.Duration(60 * time.Second)
		c.Queue.MaxRetryDelay = config.Duration(time.Hour)
	})
	m := e.CreateModel("gpt", "openai", 1, map[string]any{"base_url": s.BaseURL(), "model": "m"})
	tk := e.Submit(map[string]any{"model_id": m.ID, "type": "text-generation", "input": "go"})
	// Far below the 48-72 s of the backoff, far above the 1 s asked.
	got := e.WaitTask(tk.ID, "", 30*time.Second)
	if got.Status != "completed" || got.Output != "after the wait" || len(got.AttemptHistory) != 2 {
		t.Fatalf("task %s %q after %d attempts (%s)", got.Status, got.Output, len(got.AttemptHistory), got.Error)
	}
	first, second := got.AttemptHistory[0], got.AttemptHistory[1]
	if first.ErrorKind != "rate_limited" {
		t.Errorf("first attempt kind %q, want rate_limited", first.ErrorKind)
	}
	if gap := second.StartedAt.Sub(*first.FinishedAt); gap < 900*time.Millisecond {
		t.Errorf("the retry started %s after the 429, before the 1 s the provider asked", gap)
	}
}

// TestE2EFailedAttemptsAreLoggedWithTheirReason: each failed attempt is
// logged at WARN with the task, model, attempt, error kind and the
// provider's message, without the model's key.
func TestE2EFailedAttemptsAreLoggedWithTheirReason(t *testing.T) {
	const key = "sk-logged-key-0123456789"
	s := newFake(t)
	s.Enqueue(fakeopenai.Reply{Status: 503, ErrorMessage: "upstream busy"})
	s.Enqueue(fakeopenai.Reply{Status: 401, ErrorMessage: "Incorrect API key provided: " + key, ErrorCode: "invalid_api_key"})
	e := apptest.New(t, nil)
	m := e.CreateModel("gpt", "openai", 1, map[string]any{"base_url": s.BaseURL(), "model": "m", "api_key": key})
	tk := e.Submit(map[string]any{"model_id": m.ID, "type": "text-generation", "input": "go"})
	if got := e.WaitTask(tk.ID, "", 30*time.Second); got.Status != "failed" || len(got.AttemptHistory) != 2 {
		t.Fatalf("task %s after %d attempts", got.Status, len(got.AttemptHistory))
	}
	logs := e.Logs.String()
	for _, want := range []string{
		fmt.Sprintf(`level=WARN msg="attempt failed; retrying" task_id=%d model_id=%d attempt=1 error_kind=retryable error="retryable (HTTP 503): upstream busy"`, tk.ID, m.ID),
		fmt.Sprintf(`level=WARN msg="attempt failed; the task fails" task_id=%d model_id=%d attempt=2 error_kind=permanent error="permanent (HTTP 401): Incorrect API key provided: [redacted] (invalid_api_key)"`, tk.ID, m.ID),
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks\n%s\nlog:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, key) {
		t.Error("the log carries the model's key")
	}
}

// TestE2EPendingReasonIsRetryBackoffFromTheFailure: from the moment an
// attempt fails with retries left, the task reads retry_backoff, never
// not_queued.
func TestE2EPendingReasonIsRetryBackoffFromTheFailure(t *testing.T) {
	s := newFake(t)
	s.SetHandler(func(fakeopenai.Request) fakeopenai.Reply { return fakeopenai.Reply{Status: 503, ErrorMessage: "busy"} })
	e := apptest.New(t, func(c *config.Config) {
		c.Queue.RetryDelay = config.Duration(60 * time.Second)
		c.Queue.MaxRetryDelay = config.Duration(time.Hour)
	})
	m := e.CreateModel("gpt", "openai", 1, map[string]any{"base_url": s.BaseURL(), "model": "m"})
	tk := e.Submit(map[string]any{"model_id": m.ID, "type": "text-generation", "input": "go", "max_retries": 1})
	var seen []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		got := e.Task(tk.ID)
		if got.Status != "pending" || got.Attempts == 0 {
			continue
		}
		seen = append(seen, got.PendingReason)
		if len(seen) >= 200 {
			break
		}
	}
	if len(seen) == 0 {
		t.Fatal("the task never went back to pending after its failed attempt")
	}
	for _, r := range seen {
		if r != "retry_backoff" {
			t.Fatalf("pending reasons after the failure %v, want retry_backoff throughout", seen)
		}
	}
}

// TestE2ETokenSourceAndFinishReason: a task says whether its token counts
// were reported by the provider or estimated, in REST and GraphQL, and
// each attempt keeps its finish reason.
func TestE2ETokenSourceAndFinishReason(t *testing.T) {
	s := newFake(t)
	s.Enqueue(fakeopenai.Reply{Chunks: []string{"counted"}, Usage: &fakeopenai.Usage{PromptTokens: 7, CompletionTokens: 1}})
	silent := rawServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"id\":\"1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"guessed answer\"}}]}\n\n")
		fmt.Fprint(w, "data: [DONE]\n\n")
	})
	e := apptest.New(t, nil)
	reported := e.CreateModel("reports", "openai", 1, map[string]any{"base_url": s.BaseURL(), "model": "m"})
	estimated := e.CreateModel("silent", "openai", 1, map[string]any{"base_url": silent, "model": "m"})
	for _, tt := range []struct {
		model          apptest.Model
		source, finish string
	}{{reported, "reported", "stop"}, {estimated, "estimated", "unknown"}} {
		tk := e.Submit(map[string]any{"model_id": tt.model.ID, "type": "text-generation", "input": "count me"})
		if got := e.WaitTask(tk.ID, "", 30*time.Second); got.Status != "completed" {
			t.Fatalf("%s: task %s (%s)", tt.model.Name, got.Status, got.Error)
		}
		var rest struct {
			Data struct {
				TokenSource    string `json:"token_source"`
				PromptTokens   int    `json:"prompt_tokens"`
				AttemptHistory []struct {
					TokenSource  string `json:"token_source"`
					FinishReason string `json:"finish_reason"`
				} `json:"attempt_history"`
			}
		}
		e.Do("GET", fmt.Sprintf("/api/v1/tasks/%d", tk.ID), nil, &rest)
		if rest.Data.TokenSource != tt.source || len(rest.Data.AttemptHistory) != 1 ||
			rest.Data.AttemptHistory[0].TokenSource != tt.source || rest.Data.AttemptHistory[0].FinishReason != tt.finish {
			t.Errorf("%s: REST %+v, want token_source %q and finish_reason %q", tt.model.Name, rest.Data, tt.source, tt.finish)
		}
		var gql struct {
			Data struct {
				Task struct {
					TokenSource    string
					AttemptHistory []struct{ TokenSource, FinishReason string }
				}
			}
		}
		e.Do("POST", "/graphql", map[string]any{
			"query":     `query($id: ID!) { task(id: $id) { tokenSource attemptHistory { tokenSource finishReason } } }`,
			"variables": map[string]any{"id": tk.ID},
		}, &gql)
		if g := gql.Data.Task; g.TokenSource != tt.source || len(g.AttemptHistory) != 1 || g.AttemptHistory[0].FinishReason != tt.finish {
			t.Errorf("%s: GraphQL %+v, want tokenSource %q and finishReason %q", tt.model.Name, g, tt.source, tt.finish)
		}
	}
}
