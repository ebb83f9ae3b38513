// Package fakeopenai is an in-process OpenAI-compatible HTTP server for
// tests. It speaks the real wire format: chat completions (plain JSON and
// SSE streams ending in `data: [DONE]`, with usage when the client sends
// stream_options.include_usage), embeddings, error bodies
// {"error":{"message":...,"type":...,"code":...}}, rate-limit headers, and
// an Ollama-style NDJSON endpoint (/api/generate) for custom providers.
//
// By default it answers every chat request with "echo: " and the last user
// message. Tests script the next answers with Enqueue, or every answer with
// SetHandler, and read what clients sent with Requests.
package fakeopenai

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Usage is token usage as the server reports it.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}

// Reply is what the server answers to one request.
type Reply struct {
	// Status is the HTTP status; 0 means 200.
	Status int
	// Header is added to the response (Retry-After, x-ratelimit-reset-*).
	Header map[string]string
	// ErrorMessage, ErrorType and ErrorCode make the error body of a
	// Status >= 400.
	ErrorMessage string
	ErrorType    string
	ErrorCode    string
	// RawBody, when set, is sent as the body verbatim (any status).
	RawBody string
	// Content is the answer; Chunks, when set, is the streamed pieces
	// (their concatenation is the answer). Default: Content split after
	// each space.
	Content string
	Chunks  []string
	// Usage overrides the computed usage.
	Usage *Usage
	// CutAfter > 0 aborts the connection after that many content chunks of
	// a stream, mid-answer (no finish_reason, no [DONE]).
	CutAfter int
	// EndAfter > 0 ends the stream cleanly after that many content chunks,
	// but before the finish_reason chunk and [DONE].
	EndAfter int
	// Hang keeps a stream open after its content chunks until the client
	// goes away; the server then reports the disconnect on Disconnected.
	Hang bool
	// Delay is waited before answering.
	Delay time.Duration
	// Embedding is the vector of an embeddings answer (default: derived
	// from the input).
	Embedding []float64
}

// Request is one request the server received.
type Request struct {
	Method string
	Path   string
	Header http.Header
	// Body is the decoded JSON body.
	Body map[string]any
	// At is when it arrived.
	At time.Time
}

// LastUserMessage returns the content of the last user message of a chat
// request, or the prompt of a completion-style one.
func (r Request) LastUserMessage() string {
	if p, ok := r.Body["prompt"].(string); ok {
		return p
	}
	msgs, _ := r.Body["messages"].([]any)
	for i := len(msgs) - 1; i >= 0; i-- {
		m, _ := msgs[i].(map[string]any)
		if m["role"] == "user" {
			s, _ := m["content"].(string)
			return s
		}
	}
	return ""
}

// Server is a running fake.
type Server struct {
	*httptest.Server
	// Disconnected receives the path of every hanging stream whose client
	// went away (its request context was cancelled).
	Disconnected chan string

	mu       sync.Mutex
	queue    []Reply
	handler  func(Request) Reply
	requests []Request
}

// New starts a server; it is closed when the test ends (call Close earlier
// if needed).
func New() *Server {
	s := &Server{Disconnected: make(chan string, 64)}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// BaseURL is the OpenAI-style base URL (".../v1").
func (s *Server) BaseURL() string { return s.URL + "/v1" }

// Enqueue scripts the next replies, in order; after them the handler (or
// the echo default) answers.
func (s *Server) Enqueue(rs ...Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, rs...)
}

// SetHandler answers every request not scripted by Enqueue.
func (s *Server) SetHandler(h func(Request) Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handler = h
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

func (s *Server) next(r Request) Reply {
	s.mu.Lock()
	s.requests = append(s.requests, r)
	if len(s.queue) > 0 {
		rep := s.queue[0]
		s.queue = s.queue[1:]
		s.mu.Unlock()
		return rep
	}
	h := s.handler
	s.mu.Unlock()
	if h != nil {
		return h(r)
	}
	return Reply{Content: "echo: " + r.LastUserMessage()}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	req := Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), At: time.Now()}
	if r.Body != nil {
		if err := json.NewDecoder(r.Body).Decode(&req.Body); err != nil && r.Method != http.MethodGet {
			writeError(w, http.StatusBadRequest, "could not parse the JSON body of your request: "+err.Error(), "invalid_request_error", "")
			return
		}
	}
	rep := s.next(req)
	if rep.Delay > 0 {
		select {
		case <-time.After(rep.Delay):
		case <-r.Context().Done():
			return
		}
	}
	for k, v := range rep.Header {
		w.Header().Set(k, v)
	}
	status := rep.Status
	if status == 0 {
		status = http.StatusOK
	}
	if rep.RawBody != "" {
		w.WriteHeader(status)
		_, _ = w.Write([]byte(rep.RawBody))
		return
	}
	if status >= 400 {
		writeError(w, status, rep.ErrorMessage, rep.ErrorType, rep.ErrorCode)
		return
	}
	switch {
	case strings.HasSuffix(r.URL.Path, "/chat/completions"):
		if stream, _ := req.Body["stream"].(bool); stream {
			s.streamChat(w, r, req, rep)
		} else {
			writeJSON(w, status, chatCompletion(req, rep))
		}
	case strings.HasSuffix(r.URL.Path, "/embeddings"):
		writeJSON(w, status, embeddings(req, rep))
	case strings.HasSuffix(r.URL.Path, "/api/generate"):
		if stream, ok := req.Body["stream"].(bool); ok && !stream {
			u := rep.usage(req, len(rep.pieces()))
			writeJSON(w, status, map[string]any{"model": modelOf(req), "response": strings.Join(rep.pieces(), ""),
				"done": true, "prompt_eval_count": u.PromptTokens, "eval_count": u.CompletionTokens})
			return
		}
		s.ndjson(w, r, req, rep)
	default:
		writeError(w, http.StatusNotFound, "unknown path "+r.URL.Path, "invalid_request_error", "not_found")
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg, typ, code string) {
	if msg == "" {
		msg = http.StatusText(status)
	}
	var c any
	if code != "" {
		c = code
	}
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": c}})
}

func (rep Reply) pieces() []string {
	if rep.Chunks != nil {
		return rep.Chunks
	}
	return strings.SplitAfter(rep.Content, " ")
}

func (rep Reply) usage(req Request, completion int) Usage {
	if rep.Usage != nil {
		return *rep.Usage
	}
	prompt := 0
	msgs, _ := req.Body["messages"].([]any)
	for _, m := range msgs {
		mm, _ := m.(map[string]any)
		s, _ := mm["content"].(string)
		prompt += len(strings.Fields(s))
	}
	if in, ok := req.Body["input"].(string); ok {
		prompt += len(strings.Fields(in))
	}
	if p, ok := req.Body["prompt"].(string); ok {
		prompt += len(strings.Fields(p))
	}
	return Usage{PromptTokens: prompt, CompletionTokens: completion}
}

func usageJSON(u Usage) map[string]any {
	return map[string]any{"prompt_tokens": u.PromptTokens, "completion_tokens": u.CompletionTokens, "total_tokens": u.PromptTokens + u.CompletionTokens}
}

func modelOf(req Request) string {
	m, _ := req.Body["model"].(string)
	return m
}

func chatCompletion(req Request, rep Reply) map[string]any {
	content := strings.Join(rep.pieces(), "")
	return map[string]any{
		"id": "chatcmpl-fake", "object": "chat.completion", "created": time.Now().Unix(), "model": modelOf(req),
		"choices": []any{map[string]any{
			"index": 0, "message": map[string]any{"role": "assistant", "content": content}, "finish_reason": "stop", "logprobs": nil,
		}},
		"usage": usageJSON(rep.usage(req, len(rep.pieces()))),
	}
}

func (s *Server) streamChat(w http.ResponseWriter, r *http.Request, req Request, rep Reply) {
	fl, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	created := time.Now().Unix()
	send := func(v any) {
		raw, _ := json.Marshal(v)
		fmt.Fprintf(w, "data: %s\n\n", raw)
		if fl != nil {
			fl.Flush()
		}
	}
	chunk := func(delta map[string]any, finish any) map[string]any {
		return map[string]any{
			"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created, "model": modelOf(req),
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": nil}},
		}
	}
	send(chunk(map[string]any{"role": "assistant", "content": ""}, nil))
	pieces := rep.pieces()
	for i, p := range pieces {
		if rep.CutAfter > 0 && i == rep.CutAfter {
			panic(http.ErrAbortHandler) // drop the connection mid-answer
		}
		if rep.EndAfter > 0 && i == rep.EndAfter {
			return // a clean end, but without finish_reason or [DONE]
		}
		send(chunk(map[string]any{"content": p}, nil))
	}
	if rep.Hang {
		<-r.Context().Done()
		s.Disconnected <- r.URL.Path
		return
	}
	send(chunk(map[string]any{}, "stop"))
	if so, _ := req.Body["stream_options"].(map[string]any); so["include_usage"] == true {
		send(map[string]any{
			"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created, "model": modelOf(req),
			"choices": []any{}, "usage": usageJSON(rep.usage(req, len(pieces))),
		})
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
	if fl != nil {
		fl.Flush()
	}
}

// Vector derives the default embedding of an input: a few numbers from its
// bytes, so different inputs get different vectors.
func Vector(input string) []float64 {
	v := make([]float64, 4)
	for i, b := range []byte(input) {
		v[i%4] += float64(b) / 1000
	}
	return v
}

func embeddings(req Request, rep Reply) map[string]any {
	var inputs []string
	switch in := req.Body["input"].(type) {
	case string:
		inputs = []string{in}
	case []any:
		for _, x := range in {
			s, _ := x.(string)
			inputs = append(inputs, s)
		}
	}
	data := make([]any, len(inputs))
	for i, in := range inputs {
		vec := rep.Embedding
		if vec == nil {
			vec = Vector(in)
		}
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": vec}
	}
	u := rep.usage(req, 0)
	return map[string]any{"object": "list", "data": data, "model": modelOf(req),
		"usage": map[string]any{"prompt_tokens": u.PromptTokens, "total_tokens": u.PromptTokens}}
}

// ndjson answers like Ollama's /api/generate: one JSON object a line,
// {"response": piece, "done": false}, then {"done": true, ...counts}.
func (s *Server) ndjson(w http.ResponseWriter, r *http.Request, req Request, rep Reply) {
	fl, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	send := func(v any) {
		raw, _ := json.Marshal(v)
		fmt.Fprintf(w, "%s\n", raw)
		if fl != nil {
			fl.Flush()
		}
	}
	pieces := rep.pieces()
	for i, p := range pieces {
		if rep.CutAfter > 0 && i == rep.CutAfter {
			panic(http.ErrAbortHandler)
		}
		if rep.EndAfter > 0 && i == rep.EndAfter {
			return
		}
		send(map[string]any{"model": modelOf(req), "response": p, "done": false})
	}
	if rep.Hang {
		<-r.Context().Done()
		s.Disconnected <- r.URL.Path
		return
	}
	u := rep.usage(req, len(pieces))
	send(map[string]any{"model": modelOf(req), "response": "", "done": true, "prompt_eval_count": u.PromptTokens, "eval_count": u.CompletionTokens})
}
