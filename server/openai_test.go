package server_test

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/llmsched/llm-scheduler/internal/app"
	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/internal/providers/fakeopenai"
)

// The OpenAI front door, driven by the official Go SDK (openai-go) as an
// application would: only its base URL points here. The upstream is the
// OpenAI-compatible fake (providers/fakeopenai).

// sdk is an openai-go client on env's front door, without the SDK's own
// retries unless asked.
func sdk(env *apptest.Env, key string, opts ...option.RequestOption) openai.Client {
	base := []option.RequestOption{option.WithBaseURL(env.URL + "/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0),
		option.WithRequestTimeout(60 * time.Second)}
	return openai.NewClient(append(base, opts...)...)
}

func userChat(model, text string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{Model: model, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(text)}}
}

// taskOf reads the task a front-door answer names in X-Task-ID.
func taskOf(t *testing.T, env *apptest.Env, resp *http.Response) apptest.Task {
	t.Helper()
	if resp == nil {
		t.Fatal("no HTTP response recorded")
	}
	id, err := strconv.Atoi(resp.Header.Get("X-Task-ID"))
	if err != nil {
		t.Fatalf("X-Task-ID = %q", resp.Header.Get("X-Task-ID"))
	}
	return env.WaitTask(id, "", 30*time.Second)
}

// apiError is the SDK's error for err, failing the test if it is none.
func apiError(t *testing.T, err error) *openai.Error {
	t.Helper()
	var e *openai.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not the SDK's *openai.Error", err, err)
	}
	return e
}

func TestOpenAIChatPassesTheProvidersAnswerThrough(t *testing.T) {
	env := apptest.New(t, nil)
	fake := fakeopenai.New()
	t.Cleanup(fake.Close)
	env.CreateModel("gpt-front", "openai", 2, map[string]any{"base_url": fake.BaseURL(), "model": "upstream-gpt", "api_key": "sk-provider-secret"})
	c := sdk(env, "")
	ctx := context.Background()

	t.Run("non-streaming", func(t *testing.T) {
		chatNonStreaming(t, env, fake, c)
	})

	t.Run("streaming", func(t *testing.T) {
		chatStreaming(t, env, fake, c)
	})

	t.Run("streaming without usage", func(t *testing.T) {
		s := c.Chat.Completions.NewStreaming(ctx, userChat("gpt-front", "no usage"))
		for s.Next() {
			if ch := s.Current(); len(ch.Choices) == 0 {
				t.Errorf("got the usage chunk %s; the client did not ask for it", ch.RawJSON())
			}
		}
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a retryable upstream error is retried by the scheduler", func(t *testing.T) {
		fake.Enqueue(fakeopenai.Reply{Status: 503, ErrorMessage: "overloaded"})
		var resp *http.Response
		res, err := c.Chat.Completions.New(ctx, userChat("gpt-front", "try again"), option.WithResponseInto(&resp))
		if err != nil {
			t.Fatal(err)
		}
		if res.Choices[0].Message.Content != "echo: try again" {
			t.Errorf("answer %q", res.Choices[0].Message.Content)
		}
		if task := taskOf(t, env, resp); task.Attempts != 2 {
			t.Errorf("task made %d attempts; want 2 (the 503, then the answer)", task.Attempts)
		}
	})

	t.Run("a permanent upstream error passes through with its status", func(t *testing.T) {
		fake.Enqueue(fakeopenai.Reply{Status: 400, ErrorMessage: "messages: bad role", ErrorType: "invalid_request_error"})
		_, err := c.Chat.Completions.New(ctx, userChat("gpt-front", "bad"))
		e := apiError(t, err)
		if e.StatusCode != http.StatusBadRequest || !strings.Contains(e.Message, "messages: bad role") || e.Type != "invalid_request_error" {
			t.Errorf("error = %d %q %q; want the upstream's 400 and message", e.StatusCode, e.Type, e.Message)
		}
	})
}

// chatNonStreaming: the upstream's own answer (id, model, content, usage)
// comes back, the task stores it, and the upstream gets the model's own
// name, the request's fields and the provider's key.
func chatNonStreaming(t *testing.T, env *apptest.Env, fake *fakeopenai.Server, c openai.Client) {
	ctx := context.Background()
	var resp *http.Response
	p := userChat("gpt-front", "hello there")
	p.Seed = openai.Int(42)
	p.Tools = []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{Name: "lookup"})}
	res, err := c.Chat.Completions.New(ctx, p, option.WithResponseInto(&resp))
	if err != nil {
		t.Fatal(err)
	}
	if res.ID != "chatcmpl-fake" || res.Model != "upstream-gpt" || res.Choices[0].Message.Content != "echo: hello there" {
		t.Errorf("answer = %s; want the upstream's own (its id, model and content)", res.RawJSON())
	}
	if res.Usage.PromptTokens != 2 || res.Usage.CompletionTokens != 3 {
		t.Errorf("usage = %+v", res.Usage)
	}
	task := taskOf(t, env, resp)
	if task.Status != "completed" || task.Output != "echo: hello there" || task.Type != "text-generation" || task.Priority != 2 {
		t.Errorf("task = %+v; want a completed medium text-generation task holding the answer", task)
	}
	up := fake.Requests()[len(fake.Requests())-1]
	if up.Body["model"] != "upstream-gpt" || up.Body["seed"] != 42.0 || up.Body["tools"] == nil {
		t.Errorf("upstream got %v; want the model's own name, seed and tools passed through", up.Body)
	}
	if got := up.Header.Get("Authorization"); got != "Bearer sk-provider-secret" {
		t.Errorf("upstream Authorization = %q; want the provider's key (the caller's never leaves)", got)
	}
}

// chatStreaming: the upstream's chunks and usage chunk stream through and
// add up to the stored output.
func chatStreaming(t *testing.T, env *apptest.Env, fake *fakeopenai.Server, c openai.Client) {
	ctx := context.Background()
	fake.Enqueue(fakeopenai.Reply{Chunks: []string{"Stre", "amed ", "answer"}, Usage: &fakeopenai.Usage{PromptTokens: 3, CompletionTokens: 3}})
	var resp *http.Response
	p := userChat("gpt-front", "stream please")
	p.StreamOptions.IncludeUsage = openai.Bool(true)
	s := c.Chat.Completions.NewStreaming(ctx, p, option.WithResponseInto(&resp))
	var acc openai.ChatCompletionAccumulator
	chunks := 0
	for s.Next() {
		chunk := s.Current()
		acc.AddChunk(chunk)
		if chunk.ID != "chatcmpl-fake" {
			t.Errorf("chunk id %q; want the upstream's", chunk.ID)
		}
		chunks++
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	text := acc.Choices[0].Message.Content
	task := taskOf(t, env, resp)
	if text != "Streamed answer" || text != task.Output {
		t.Errorf("text from chunks %q, stored output %q; want both the upstream's answer", text, task.Output)
	}
	if acc.Usage.PromptTokens != 3 || acc.Usage.CompletionTokens != 3 || chunks != 6 {
		t.Errorf("usage %+v from %d chunks; want the upstream's usage chunk (role, 3 contents, finish, usage)", acc.Usage, chunks)
	}
}

func TestOpenAIChatOnASimulator(t *testing.T) {
	env := apptest.New(t, nil)
	env.Simulator("sim", 2, map[string]any{"latency_ms": 1, "output_tokens": 5, "tokens_per_second": 200})
	c := sdk(env, "")
	ctx := context.Background()
	var resp *http.Response
	res, err := c.Chat.Completions.New(ctx, userChat("sim", "one two"), option.WithResponseInto(&resp))
	if err != nil {
		t.Fatal(err)
	}
	task := taskOf(t, env, resp)
	if res.Object != "chat.completion" || res.Model != "sim" || res.Choices[0].Message.Content != task.Output || task.Output == "" ||
		res.Choices[0].FinishReason != "stop" || res.Usage.CompletionTokens != 5 {
		t.Errorf("answer %s for task %+v", res.RawJSON(), task)
	}
	p := userChat("sim", "three four")
	p.StreamOptions.IncludeUsage = openai.Bool(true)
	s := c.Chat.Completions.NewStreaming(ctx, p, option.WithResponseInto(&resp))
	var acc openai.ChatCompletionAccumulator
	for s.Next() {
		acc.AddChunk(s.Current())
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	task = taskOf(t, env, resp)
	if got := acc.Choices[0].Message.Content; got != task.Output || !strings.Contains(got, "three") {
		t.Errorf("text from chunks %q; stored output %q", got, task.Output)
	}
	if acc.Usage.CompletionTokens != 5 || acc.Choices[0].FinishReason != "stop" {
		t.Errorf("usage %+v, finish %q", acc.Usage, acc.Choices[0].FinishReason)
	}
}

func TestOpenAIEmbeddingsAndModels(t *testing.T) {
	env := apptest.New(t, nil)
	fake := fakeopenai.New()
	t.Cleanup(fake.Close)
	env.CreateModel("embedder", "openai", 2, map[string]any{"base_url": fake.BaseURL(), "model": "text-embedding-fake"})
	env.Simulator("other-sim", 1, nil)
	c := sdk(env, "")
	ctx := context.Background()

	var resp *http.Response
	res, err := c.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: "embedder",
		Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"first text", "second"}}}, option.WithResponseInto(&resp))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Data) != 2 || res.Model != "embedder" {
		t.Fatalf("answer %s", res.RawJSON())
	}
	for i, in := range []string{"first text", "second"} {
		want := fakeopenai.Vector(in)
		if fmt.Sprint(res.Data[i].Embedding) != fmt.Sprint(want) || res.Data[i].Index != int64(i) {
			t.Errorf("data[%d] = %v; want %v", i, res.Data[i].Embedding, want)
		}
	}
	ids := strings.Split(resp.Header.Get("X-Task-ID"), ",")
	if len(ids) != 2 {
		t.Fatalf("X-Task-ID = %q; want one task per input", resp.Header.Get("X-Task-ID"))
	}
	for _, raw := range ids {
		id, _ := strconv.Atoi(raw)
		if task := env.WaitTask(id, "completed", 10*time.Second); task.Type != "embedding" || len(task.Embedding) != 4 {
			t.Errorf("task %+v; want a completed embedding task holding the vector", task)
		}
	}

	// base64, as the Node and Python SDKs ask by default.
	var out struct {
		Data []struct {
			Embedding string `json:"embedding"`
		} `json:"data"`
	}
	if code := env.Do("POST", "/v1/embeddings", map[string]any{"model": "embedder", "input": "abc", "encoding_format": "base64"}, &out); code != 200 || len(out.Data) != 1 {
		t.Fatalf("base64 embeddings: %d %+v", code, out)
	}
	raw, err := base64.StdEncoding.DecodeString(out.Data[0].Embedding)
	if err != nil || len(raw) != 16 {
		t.Fatalf("base64 embedding %q: %v", out.Data[0].Embedding, err)
	}
	for i, want := range fakeopenai.Vector("abc") {
		if got := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])); got != float32(want) {
			t.Errorf("base64 component %d = %v, want %v", i, got, float32(want))
		}
	}

	page, err := c.Models.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range page.Data {
		if m.ID != "demo-simulator" { // seeded on the embedded default
			names = append(names, m.ID)
		}
		if m.Object != "model" || m.OwnedBy != "llm-scheduler" || m.Created == 0 {
			t.Errorf("model %s", m.RawJSON())
		}
	}
	if fmt.Sprint(names) != "[embedder other-sim]" {
		t.Errorf("models.list = %v", names)
	}
	if m, err := c.Models.Get(ctx, "other-sim"); err != nil || m.ID != "other-sim" {
		t.Errorf("models.retrieve = %v, %v", m, err)
	}
}

func TestOpenAIErrorsCarryOpenAIsShapeAndStatus(t *testing.T) {
	sh := apptest.NewShared(t, func(c *config.Config) {
		c.Queue.MaxRetries = 0
		c.Queue.MaxQueueSize = 20
	})
	env := sh.Start(t, app.RoleAll)
	fake := fakeopenai.New()
	t.Cleanup(fake.Close)
	env.CreateModel("up", "openai", 1, map[string]any{"base_url": fake.BaseURL(), "model": "m"})
	off := env.CreateModel("parked", "openai", 1, map[string]any{"base_url": fake.BaseURL(), "model": "m"})
	if code := env.Do("PUT", fmt.Sprintf("/api/v1/models/%d/status", off.ID), map[string]any{"status": "offline"}, nil); code != 200 {
		t.Fatalf("offline: %d", code)
	}
	c := sdk(env, "")
	ctx := context.Background()
	cases := []struct {
		desc        string
		call        func() error
		status      int
		param, code string
	}{
		{desc: "invalid request", status: 400, param: "temperature", code: "invalid_value", call: func() error {
			p := userChat("up", "hi")
			p.Temperature = openai.Float(3)
			_, err := c.Chat.Completions.New(ctx, p)
			return err
		}},
		{desc: "unknown model", status: 404, param: "model", code: "model_not_found", call: func() error {
			_, err := c.Chat.Completions.New(ctx, userChat("no-such-model", "hi"))
			return err
		}},
		{desc: "queue timeout", status: 408, code: "queue_timeout", call: func() error {
			_, err := c.Chat.Completions.New(ctx, userChat("parked", "hi"), option.WithHeader("X-Queue-Timeout", "300ms"))
			return err
		}},
		{desc: "upstream 500 passes through", status: 500, code: "task_failed", call: func() error {
			fake.Enqueue(fakeopenai.Reply{Status: 500, ErrorMessage: "upstream broke"})
			_, err := c.Chat.Completions.New(ctx, userChat("up", "hi"))
			return err
		}},
		{desc: "upstream 503 passes through", status: 503, code: "task_failed", call: func() error {
			fake.Enqueue(fakeopenai.Reply{Status: 503, ErrorMessage: "upstream overloaded"})
			_, err := c.Chat.Completions.New(ctx, userChat("up", "hi"))
			return err
		}},
		{desc: "bad header", status: 400, param: "X-Priority", code: "invalid_value", call: func() error {
			_, err := c.Chat.Completions.New(ctx, userChat("up", "hi"), option.WithHeader("X-Priority", "urgent"))
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			e := apiError(t, tc.call())
			if e.StatusCode != tc.status || e.Param != tc.param || e.Code != tc.code || e.Message == "" || e.Type == "" {
				t.Errorf("error = %d param %q code %q type %q %q; want %d param %q code %q", e.StatusCode, e.Param, e.Code, e.Type, e.Message, tc.status, tc.param, tc.code)
			}
		})
	}
	// The queue-timed-out task was cancelled.
	var list struct {
		Data []apptest.Task `json:"data"`
	}
	env.Do("GET", fmt.Sprintf("/api/v1/tasks?model_id=%d&page=1&page_size=10", off.ID), nil, &list)
	if len(list.Data) != 1 || list.Data[0].Status != "cancelled" {
		t.Errorf("tasks of the parked model: %+v; want the one cancelled past its queue timeout", list.Data)
	}

	t.Run("backpressure is a 429 with Retry-After, which the SDK honours", func(t *testing.T) {
		backpressureRetryAfter(t, env, off.ID)
	})
}

// backpressureRetryAfter: a full queue answers 429 queue_full with
// Retry-After 5, and the SDK waits that long before its one retry.
func backpressureRetryAfter(t *testing.T, env *apptest.Env, parkedID int) {
	ctx := context.Background()
	// Fill the queue (max_queue_size 20) on the offline model, the
	// second time on a count fresh from the database (the backlog
	// count is cached for 250 ms, and tasks that left pending since
	// are only seen in a fresh one).
	for range 2 {
		for i := 0; env.Do("POST", "/api/v1/tasks", map[string]any{"model_id": parkedID, "type": "text-generation", "input": "wait"}, nil) != 429; i++ {
			if i == 30 {
				t.Fatal("the queue does not fill")
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	var calls atomic.Int32
	counting := option.WithMiddleware(func(r *http.Request, next option.MiddlewareNext) (*http.Response, error) {
		calls.Add(1)
		return next(r)
	})
	start := time.Now()
	retrying := sdk(env, "", option.WithMaxRetries(1), counting)
	_, err := retrying.Chat.Completions.New(ctx, userChat("parked", "hi"))
	e := apiError(t, err)
	if e.StatusCode != http.StatusTooManyRequests || e.Code != "queue_full" || e.Response.Header.Get("Retry-After") != "5" {
		t.Errorf("error = %d %q Retry-After %q; want 429 queue_full with Retry-After 5", e.StatusCode, e.Code, e.Response.Header.Get("Retry-After"))
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("the SDK sent %d requests; want 2 (one retry)", n)
	}
	if waited := time.Since(start); waited < 5*time.Second {
		t.Errorf("the SDK retried after %s; want it to wait the Retry-After of 5s", waited)
	}
}

func TestOpenAIAuth(t *testing.T) {
	a := setupAuth(t)
	if code := a.Do("PUT", fmt.Sprintf("/api/v1/models/%d/status", a.modelID), map[string]any{"status": "online"}, nil,
		"Authorization", "Bearer "+a.keys["admin"]); code != 200 {
		t.Fatalf("online: %d", code)
	}
	ctx := context.Background()
	chat := func(key string) error {
		c := sdk(a.Env, key)
		_, err := c.Chat.Completions.New(ctx, userChat("auth-sim", "hi"))
		return err
	}
	if err := chat(a.keys["submitter"]); err != nil {
		t.Fatalf("a submitter key: %v", err)
	}
	for _, tc := range []struct {
		desc, key string
		status    int
	}{
		{"no key", "", 401}, {"unknown key", "lls_not-a-key", 401}, {"viewer key", a.keys["viewer"], 403},
	} {
		e := apiError(t, chat(tc.key))
		if e.StatusCode != tc.status {
			t.Errorf("%s: status %d (%s), want %d", tc.desc, e.StatusCode, e.Message, tc.status)
		}
	}
	viewer := sdk(a.Env, a.keys["viewer"])
	if _, err := viewer.Models.List(ctx); apiError(t, err).StatusCode != http.StatusForbidden {
		t.Errorf("a viewer lists models: %v, want 403", err)
	}
	if _, err := a.svc.Revoke(ctx, a.keyIDs["submitter"]); err != nil {
		t.Fatal(err)
	}
	e := apiError(t, chat(a.keys["submitter"]))
	if e.StatusCode != http.StatusUnauthorized || !strings.Contains(e.Message, "revoked") || e.Code != "invalid_api_key" {
		t.Errorf("revoked key: %d %q %q, want 401 invalid_api_key", e.StatusCode, e.Code, e.Message)
	}
	// The task the submitter made is recorded as theirs.
	var list struct {
		Data []apptest.Task `json:"data"`
	}
	a.Do("GET", "/api/v1/tasks?page=1&page_size=10", nil, &list, "Authorization", "Bearer "+a.keys["admin"])
	if len(list.Data) != 1 || list.Data[0].Status != "completed" {
		t.Errorf("tasks = %+v; want the submitter's one", list.Data)
	}
}

func TestOpenAIPriorityRunsNext(t *testing.T) {
	env := apptest.New(t, nil)
	m := env.Simulator("one-at-a-time", 1, map[string]any{"latency_ms": 600, "output_tokens": 1})
	var low []apptest.Task
	for range 3 {
		low = append(low, env.Submit(map[string]any{"model_id": m.ID, "type": "text-generation", "input": "batch", "priority": 1}))
	}
	env.WaitTask(low[0].ID, "running", 10*time.Second)
	var resp *http.Response
	p := userChat("one-at-a-time", "urgent")
	p.ServiceTier = openai.ChatCompletionNewParamsServiceTierPriority
	c := sdk(env, "")
	if _, err := c.Chat.Completions.New(context.Background(), p, option.WithResponseInto(&resp)); err != nil {
		t.Fatal(err)
	}
	urgent := taskOf(t, env, resp)
	second := env.Task(low[1].ID)
	if urgent.Priority != 3 || urgent.StartedAt == nil {
		t.Fatalf("front-door task %+v; want priority 3, run", urgent)
	}
	if second.StartedAt != nil && !second.StartedAt.After(*urgent.StartedAt) {
		t.Errorf("low-priority task %d started at %v, before the priority request's task (%v)", second.ID, second.StartedAt, urgent.StartedAt)
	}
}

// The api process holding the client's connection is not the process
// running the task: the stream crosses the event bus, and a client that
// goes away mid-stream cancels the upstream call on the worker.
func TestOpenAICrossProcessStreamAndDisconnect(t *testing.T) {
	sh := apptest.NewShared(t, nil)
	api := sh.Start(t, app.RoleAPI)
	sh.Start(t, app.RoleWorker)
	fake := fakeopenai.New()
	t.Cleanup(fake.Close)
	api.CreateModel("remote", "openai", 1, map[string]any{"base_url": fake.BaseURL(), "model": "m"})
	c := sdk(api, "")

	fake.Enqueue(fakeopenai.Reply{Chunks: []string{"across ", "processes"}})
	s := c.Chat.Completions.NewStreaming(context.Background(), userChat("remote", "x"))
	var acc openai.ChatCompletionAccumulator
	for s.Next() {
		acc.AddChunk(s.Current())
	}
	if err := s.Err(); err != nil || acc.Choices[0].Message.Content != "across processes" {
		t.Fatalf("stream through another process: %q, %v", acc.Choices[0].Message.Content, err)
	}

	fake.Enqueue(fakeopenai.Reply{Chunks: []string{"first ", "words "}, Hang: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var resp *http.Response
	s = c.Chat.Completions.NewStreaming(ctx, userChat("remote", "y"), option.WithResponseInto(&resp))
	if !s.Next() {
		t.Fatalf("no first chunk: %v", s.Err())
	}
	cancel() // the client goes away mid-stream
	select {
	case <-fake.Disconnected:
	case <-time.After(20 * time.Second):
		t.Fatal("the upstream call was not cancelled after the client went away")
	}
	id, _ := strconv.Atoi(resp.Header.Get("X-Task-ID"))
	if task := api.WaitTask(id, "cancelled", 10*time.Second); task.Status != "cancelled" {
		t.Errorf("task %+v; want cancelled", task)
	}
}

// Requests that are not JSON objects, or that break a field's rule, are
// refused with the field named, and no task is written.
func TestOpenAIRefusesBadRequestsWithoutATask(t *testing.T) {
	env := apptest.New(t, nil)
	env.Simulator("s", 1, nil)
	for _, tc := range []struct {
		desc, path, body, param string
	}{
		{"not json", "/v1/chat/completions", `{"model":`, ""},
		{"no messages", "/v1/chat/completions", `{"model":"s"}`, "messages"},
		{"bad role", "/v1/chat/completions", `{"model":"s","messages":[{"role":"robot","content":"x"}]}`, "messages[0].role"},
		{"no text", "/v1/chat/completions", `{"model":"s","messages":[{"role":"user","content":[]}]}`, "messages"},
		{"bad tier", "/v1/chat/completions", `{"model":"s","service_tier":"gold","messages":[{"role":"user","content":"x"}]}`, "service_tier"},
		{"bad max_tokens", "/v1/chat/completions", `{"model":"s","max_tokens":1.5,"messages":[{"role":"user","content":"x"}]}`, "max_tokens"},
		{"bad stream", "/v1/chat/completions", `{"model":"s","stream":"yes","messages":[{"role":"user","content":"x"}]}`, "stream"},
		{"token arrays", "/v1/embeddings", `{"model":"s","input":[[1,2,3]]}`, "input[0]"},
		{"bad format", "/v1/embeddings", `{"model":"s","input":"x","encoding_format":"int8"}`, "encoding_format"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var eb struct {
				Error struct {
					Message, Type string
					Param, Code   *string
				} `json:"error"`
			}
			if code := env.Do("POST", tc.path, tc.body, &eb); code != 400 {
				t.Fatalf("status %d, want 400", code)
			}
			param := ""
			if eb.Error.Param != nil {
				param = *eb.Error.Param
			}
			if param != tc.param || eb.Error.Type != "invalid_request_error" || eb.Error.Message == "" {
				t.Errorf("error %+v param %q; want param %q", eb.Error, param, tc.param)
			}
		})
	}
	if n := env.CountTasks(); n != 0 {
		t.Errorf("%d tasks written; want none", n)
	}
	// An unknown path under /v1 answers in OpenAI's shape too.
	resp, err := http.Post(env.URL+"/v1/responses", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var eb map[string]map[string]any
	if resp.StatusCode != http.StatusNotFound || json.Unmarshal(raw, &eb) != nil || eb["error"]["code"] != "unknown_url" {
		t.Errorf("POST /v1/responses: %d %s", resp.StatusCode, raw)
	}
}
