package server

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/events"
	"github.com/llmsched/llm-scheduler/internal/providers"
	"github.com/llmsched/llm-scheduler/internal/scheduler"
)

// The OpenAI-compatible front door: /v1/chat/completions, /v1/embeddings
// and /v1/models in OpenAI's wire format, so that any OpenAI SDK gets
// priorities, per-model limits, retries and a stored record of every call
// by changing its base URL. Each request becomes a task of the model whose
// name it asks for, queued and run like any other; the handler follows the
// task on the event bus (openai_follow.go) and answers with the provider's
// own answer, streamed chunk by chunk when asked (openai_stream.go).
// docs/openai.md is the user's guide.

func init() { mounts = append(mounts, mountOpenAI) }

func mountOpenAI(s *Server) error {
	d := &openaiDoor{
		svc: s.svc, bus: s.app.Bus, log: s.log, auth: s.auth,
		queueTimeout: s.app.Config.Server.OpenAIQueueTimeout.D(),
		maxBody:      s.app.Config.Server.MaxBodyBytes,
		stopping:     s.app.Stopping(),
	}
	s.mux.Handle("POST /v1/chat/completions", d.guard(d.chat))
	s.mux.Handle("POST /v1/embeddings", d.guard(d.embeddings))
	s.mux.Handle("GET /v1/models", d.guard(d.listModels))
	s.mux.Handle("GET /v1/models/{model...}", d.guard(d.getModel))
	s.mux.Handle("/v1/", d.guard(d.unknown))
	return nil
}

// openaiDoor serves the front door.
type openaiDoor struct {
	svc          *scheduler.Service
	bus          *events.Bus
	log          *slog.Logger
	auth         *Authenticator
	queueTimeout time.Duration
	maxBody      int64
	stopping     <-chan struct{}
	names        modelNames
}

// guard authenticates the caller with the scheduler's API key (a
// submitter or higher: every /v1 call runs or lists what a caller may
// run), and refuses new work once shutdown began, in OpenAI's shape.
func (d *openaiDoor) guard(f http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := d.auth.Authenticate(r.Context(), bearer(r))
		if err != nil {
			d.fail(w, r, err, nil)
			return
		}
		if !p.Can(domain.PermSubmit) {
			d.fail(w, r, &scheduler.Error{Code: scheduler.CodeForbidden,
				Message: "role " + string(p.Role) + " may not use the OpenAI API (needs " + string(domain.PermSubmit) + ": a submitter, operator or admin key)"}, nil)
			return
		}
		if r.Method == http.MethodPost {
			select {
			case <-d.stopping:
				d.fail(w, r, errStopping, nil)
				return
			default:
			}
		}
		f(w, r.WithContext(WithPrincipal(r.Context(), p)))
	})
}

func (d *openaiDoor) fail(w http.ResponseWriter, r *http.Request, err error, fields func(string) string) {
	writeOpenAIError(w, r, d.log, err, fields)
}

func (d *openaiDoor) unknown(w http.ResponseWriter, r *http.Request) {
	d.fail(w, r, &openAIError{Status: http.StatusNotFound, Type: "invalid_request_error", Code: "unknown_url",
		Message: fmt.Sprintf("Unknown request URL: %s %s. The OpenAI front door serves POST /v1/chat/completions, POST /v1/embeddings and GET /v1/models (docs/openai.md)", r.Method, r.URL.Path)}, nil)
}

// modelNames resolves model names, reading the model list at most every
// modelNamesTTL (and again at once for a name it does not know, so a
// model just registered is found).
type modelNames struct {
	mu     sync.Mutex
	at     time.Time
	list   []*ent.Model
	byName map[string]*ent.Model
}

const modelNamesTTL = 500 * time.Millisecond

func (c *modelNames) get(ctx context.Context, svc *scheduler.Service, fresh bool) ([]*ent.Model, map[string]*ent.Model, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byName != nil && !fresh && time.Since(c.at) < modelNamesTTL {
		return c.list, c.byName, nil
	}
	ms, err := svc.ListModels(ctx)
	if err != nil {
		return nil, nil, err
	}
	c.list, c.byName, c.at = ms, make(map[string]*ent.Model, len(ms)), time.Now()
	for _, m := range ms {
		c.byName[m.Name] = m
	}
	return c.list, c.byName, nil
}

// model returns the registered model named name.
func (d *openaiDoor) model(ctx context.Context, name string) (*ent.Model, error) {
	_, byName, err := d.names.get(ctx, d.svc, false)
	if err != nil {
		return nil, err
	}
	if m, ok := byName[name]; ok {
		return m, nil
	}
	if _, byName, err = d.names.get(ctx, d.svc, true); err != nil {
		return nil, err
	}
	if m, ok := byName[name]; ok {
		return m, nil
	}
	return nil, modelNotFound(name)
}

func openAIModel(m *ent.Model) map[string]any {
	return map[string]any{"id": m.Name, "object": "model", "created": m.CreatedAt.Unix(), "owned_by": "llm-scheduler"}
}

func (d *openaiDoor) listModels(w http.ResponseWriter, r *http.Request) {
	ms, _, err := d.names.get(r.Context(), d.svc, true)
	if err != nil {
		d.fail(w, r, err, nil)
		return
	}
	data := make([]any, len(ms))
	for i, m := range ms {
		data[i] = openAIModel(m)
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

func (d *openaiDoor) getModel(w http.ResponseWriter, r *http.Request) {
	m, err := d.model(r.Context(), r.PathValue("model"))
	if err != nil {
		d.fail(w, r, err, nil)
		return
	}
	writeJSON(w, http.StatusOK, openAIModel(m))
}

// readBody reads a JSON object body (OpenAI's requests carry many fields,
// passed on to the provider: unknown ones are not refused here).
func readBody(r *http.Request) (map[string]any, error) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &scheduler.Error{Code: scheduler.CodeTooLarge,
				Message: fmt.Sprintf("request body is over the limit of %d bytes (server.max_body_bytes)", mbe.Limit)}
		}
		return nil, invalidParam("body", "could not be read: %v", err)
	}
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil || body == nil {
		return nil, &openAIError{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "invalid_json",
			Message: "We could not parse the JSON body of your request: it must be one JSON object"}
	}
	return body, nil
}

// priority reads the task priority from the X-Priority header (high,
// medium, low or 3, 2, 1), else from OpenAI's service_tier (priority is
// high, auto and default medium, flex low); default medium.
func priority(r *http.Request, body map[string]any) (int, error) {
	if h := strings.TrimSpace(r.Header.Get("X-Priority")); h != "" {
		switch strings.ToLower(h) {
		case "high", "3":
			return int(domain.PriorityHigh), nil
		case "medium", "2":
			return int(domain.PriorityMedium), nil
		case "low", "1":
			return int(domain.PriorityLow), nil
		}
		return 0, invalidParam("X-Priority", "must be high, medium, low, 3, 2 or 1, got %q", h)
	}
	tier, ok := body["service_tier"]
	if !ok || tier == nil {
		return int(domain.PriorityMedium), nil
	}
	switch tier {
	case "priority":
		return int(domain.PriorityHigh), nil
	case "auto", "default":
		return int(domain.PriorityMedium), nil
	case "flex":
		return int(domain.PriorityLow), nil
	}
	return 0, invalidParam("service_tier", "must be auto, default, flex or priority, got %v", tier)
}

// maxQueueTimeout bounds X-Queue-Timeout.
const maxQueueTimeout = 24 * time.Hour

// queueDeadline is when a request stops waiting for its task to start:
// X-Queue-Timeout (a duration such as 30s or 2m, or seconds) or the
// configured default.
func (d *openaiDoor) queueDeadline(r *http.Request, start time.Time) (time.Time, time.Duration, error) {
	h := strings.TrimSpace(r.Header.Get("X-Queue-Timeout"))
	if h == "" {
		return start.Add(d.queueTimeout), d.queueTimeout, nil
	}
	v, err := time.ParseDuration(h)
	if err != nil {
		secs, serr := strconv.ParseFloat(h, 64)
		if serr != nil {
			return time.Time{}, 0, invalidParam("X-Queue-Timeout", "must be a duration such as 30s or 2m, or a number of seconds, got %q", h)
		}
		v = time.Duration(secs * float64(time.Second))
	}
	if v <= 0 || v > maxQueueTimeout {
		return time.Time{}, 0, invalidParam("X-Queue-Timeout", "must be more than 0s and at most 24h, got %q", h)
	}
	return start.Add(v), v, nil
}

// intParam reads an optional positive integer field.
func intParam(body map[string]any, key string) (*float64, error) {
	v, ok := body[key]
	if !ok || v == nil {
		return nil, nil
	}
	n, isNum := v.(float64)
	if !isNum || n != float64(int64(n)) || n < 1 {
		return nil, invalidParam(key, "must be a positive integer, got %v", v)
	}
	return &n, nil
}

// chatRequest is a validated chat completions request.
type chatRequest struct {
	model        string
	stream       bool
	includeUsage bool
	input        string
	params       map[string]any
}

var chatRoles = map[string]bool{"system": true, "developer": true, "user": true, "assistant": true, "tool": true, "function": true}

// parseChat validates a chat completions body. The task's input is the
// text of the last user message (what the dashboard shows); the whole
// body, without service_tier (the scheduler's priority), goes to the
// provider as params.openai. max_tokens and temperature are also task
// parameters, so the model's limits apply to them.
func parseChat(body map[string]any) (chatRequest, error) {
	var c chatRequest
	name, _ := body["model"].(string)
	if strings.TrimSpace(name) == "" {
		return c, invalidParam("model", "is required: the name of a registered model (GET /v1/models lists them)")
	}
	c.model = name
	input, err := chatInput(body)
	if err != nil {
		return c, err
	}
	c.input = input
	if c.stream, c.includeUsage, err = chatStreaming(body); err != nil {
		return c, err
	}
	if c.params, err = chatParams(body); err != nil {
		return c, err
	}
	return c, nil
}

// chatInput checks the messages and returns the text of the last user
// message, or of the last message with text when no user message has any.
func chatInput(body map[string]any) (string, error) {
	msgs, ok := body["messages"].([]any)
	if !ok || len(msgs) == 0 {
		return "", invalidParam("messages", "is required: a non-empty array of messages")
	}
	lastUser, lastAny := "", ""
	for i, m := range msgs {
		mm, ok := m.(map[string]any)
		if !ok {
			return "", invalidParam(fmt.Sprintf("messages[%d]", i), "must be an object with a role and a content")
		}
		role, _ := mm["role"].(string)
		if !chatRoles[role] {
			return "", invalidParam(fmt.Sprintf("messages[%d].role", i), "must be system, developer, user, assistant or tool, got %v", mm["role"])
		}
		switch mm["content"].(type) {
		case string, []any, nil:
		default:
			return "", invalidParam(fmt.Sprintf("messages[%d].content", i), "must be a string, an array of content parts or null")
		}
		if text := providers.OpenAIText(mm["content"]); strings.TrimSpace(text) != "" {
			lastAny = text
			if role == "user" {
				lastUser = text
			}
		}
	}
	input := cmp.Or(lastUser, lastAny)
	if input == "" {
		return "", invalidParam("messages", "must hold at least one message with text content")
	}
	return input, nil
}

// chatStreaming reads stream and stream_options.include_usage.
func chatStreaming(body map[string]any) (stream, includeUsage bool, err error) {
	if v, ok := body["stream"]; ok && v != nil {
		b, isBool := v.(bool)
		if !isBool {
			return false, false, invalidParam("stream", "must be true or false, got %v", v)
		}
		stream = b
	}
	if v, ok := body["stream_options"]; ok && v != nil {
		so, isObj := v.(map[string]any)
		if !isObj {
			return false, false, invalidParam("stream_options", "must be an object")
		}
		if iu, ok := so["include_usage"]; ok && iu != nil {
			b, isBool := iu.(bool)
			if !isBool {
				return false, false, invalidParam("stream_options.include_usage", "must be true or false, got %v", iu)
			}
			includeUsage = b
		}
	}
	return stream, includeUsage, nil
}

// chatParams is the task's parameters: max_tokens and temperature, and
// the whole body but service_tier as params.openai.
func chatParams(body map[string]any) (map[string]any, error) {
	params := map[string]any{}
	for _, key := range []string{"max_tokens", "max_completion_tokens"} {
		n, err := intParam(body, key)
		if err != nil {
			return nil, err
		}
		if n != nil {
			params["max_tokens"] = *n
		}
	}
	if v, ok := body["temperature"]; ok && v != nil {
		t, isNum := v.(float64)
		if !isNum || t < 0 || t > 2 {
			return nil, invalidParam("temperature", "must be a number between 0 and 2, got %v", v)
		}
		params["temperature"] = t
	}
	pass := make(map[string]any, len(body))
	for k, v := range body {
		if k != "service_tier" {
			pass[k] = v
		}
	}
	params["openai"] = pass
	return params, nil
}

// chatFields names the request's fields for the scheduler's.
func chatFields(f string) string {
	switch {
	case f == "input":
		return "messages"
	case f == "model_id":
		return "model"
	case strings.HasPrefix(f, "params."):
		return strings.TrimPrefix(f, "params.")
	}
	return ""
}

// submit creates a front-door task followed by f. A task that was stored
// although the submission failed (its caller went away meanwhile) is
// cancelled.
func (d *openaiDoor) submit(ctx context.Context, f *follower, n scheduler.NewTask) error {
	n.OnStored, n.APIKeyID = f.stored, callerKeyID(ctx)
	if _, err := d.svc.CreateTask(ctx, n); err != nil {
		d.cancel(f.taskID(), "its submission failed")
		return d.modelGone(err)
	}
	return nil
}

// modelGone turns the refusal of a model deleted since it was looked up
// by name into the 404 that an unknown name gets.
func (d *openaiDoor) modelGone(err error) error {
	var se *scheduler.Error
	if errors.As(err, &se) && se.Code == scheduler.CodeInvalid && strings.HasSuffix(se.Field, "model_id") {
		return &openAIError{Status: http.StatusNotFound, Type: "invalid_request_error", Param: "model", Code: "model_not_found", Message: se.Message}
	}
	return err
}

func (d *openaiDoor) chat(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ctx := r.Context()
	body, err := readBody(r)
	if err != nil {
		d.fail(w, r, err, nil)
		return
	}
	c, err := parseChat(body)
	if err != nil {
		d.fail(w, r, err, nil)
		return
	}
	prio, err := priority(r, body)
	if err != nil {
		d.fail(w, r, err, nil)
		return
	}
	deadline, timeout, err := d.queueDeadline(r, start)
	if err != nil {
		d.fail(w, r, err, nil)
		return
	}
	m, err := d.model(ctx, c.model)
	if err != nil {
		d.fail(w, r, err, nil)
		return
	}
	f := newFollower(d.bus, true)
	defer f.close()
	err = d.submit(ctx, f, scheduler.NewTask{ModelID: m.ID, Type: string(domain.TypeTextGeneration),
		Input: c.input, Priority: &prio, Params: c.params})
	if err != nil {
		d.fail(w, r, err, chatFields)
		return
	}
	id := f.taskID()
	w.Header().Set("X-Task-ID", strconv.Itoa(id))
	if c.stream {
		d.streamChat(w, r, f, c, deadline, timeout)
		return
	}
	end, err := d.wait(ctx, f, deadline, nil, hasAnswer)
	switch {
	case errors.Is(err, errQueueTimeout):
		d.fail(w, r, queueTimeoutError(id, timeout), nil)
		return
	case ctx.Err() != nil:
		return // the client went away; its task was cancelled
	case err != nil:
		d.fail(w, r, err, nil)
		return
	}
	if end.task.Status != domain.StatusCompleted {
		d.fail(w, r, endError(end), nil)
		return
	}
	if a := end.last.Answer; len(a) > 0 && end.last.Attempt == end.task.Attempts {
		// The provider's own answer, as it sent it.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(a)
		return
	}
	writeJSON(w, http.StatusOK, chatCompletion(end.task, c.model))
}

// hasAnswer reports whether a plain chat request is answered with the
// provider's own answer (a provider that speaks OpenAI's protocol): then
// the stored task is not needed to answer.
func hasAnswer(end ending) bool { return len(end.last.Answer) > 0 }

// chatCompletion is the answer of a provider that does not speak OpenAI's
// protocol (simulator, custom), in OpenAI's shape.
func chatCompletion(t *ent.Task, model string) map[string]any {
	return map[string]any{
		"id": chatID(t.ID), "object": "chat.completion", "created": t.CreatedAt.Unix(), "model": model,
		"choices": []any{map[string]any{
			"index": 0, "message": map[string]any{"role": "assistant", "content": t.Output, "refusal": nil},
			"finish_reason": "stop", "logprobs": nil,
		}},
		"usage":              usageOf(t),
		"system_fingerprint": nil,
	}
}

func chatID(taskID int) string { return fmt.Sprintf("chatcmpl-llmsched-%d", taskID) }

func usageOf(t *ent.Task) map[string]any {
	return map[string]any{"prompt_tokens": t.PromptTokens, "completion_tokens": t.CompletionTokens,
		"total_tokens": t.PromptTokens + t.CompletionTokens}
}
