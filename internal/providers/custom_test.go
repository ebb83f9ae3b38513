package providers_test

import (
	"context"
	"encoding/json"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/providers"
	"github.com/llmsched/llm-scheduler/internal/providers/fakeopenai"
)

func hostPort(t *testing.T, s *fakeopenai.Server) (string, float64) {
	t.Helper()
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(u.Host)
	var p float64
	if err := json.Unmarshal([]byte(port), &p); err != nil {
		t.Fatal(err)
	}
	return host, p
}

func TestLocalSpeaksOpenAIAtHostPortWithModelFromPath(t *testing.T) {
	s := newFake(t)
	host, port := hostPort(t, s)
	p := mustProvider(t, domain.ModelLocal, map[string]any{
		"host": host, "port": port, "model_path": "/models/llama-2-7b-chat/", "max_tokens": float64(2048), "temperature": 0.7,
	})
	var c collect
	res, err := p.Generate(context.Background(), textRequest(t, domain.TypeTranslation, "Bonjour", map[string]any{"target_language": "English", "source_language": "French"}), c.add)
	if err != nil {
		t.Fatalf("generate: %v", err)
	}
	if res.Output == "" || strings.Join(c.chunks, "") != res.Output {
		t.Errorf("output %q, chunks %q", res.Output, c.chunks)
	}
	got := s.Requests()[0]
	if got.Path != "/v1/chat/completions" || got.Body["model"] != "llama-2-7b-chat" || got.Body["max_tokens"] != float64(2048) {
		t.Errorf("request = %s %v", got.Path, got.Body)
	}
	msgs, _ := got.Body["messages"].([]any)
	if sys, _ := msgs[0].(map[string]any)["content"].(string); !strings.Contains(sys, "from French into English") {
		t.Errorf("translation instruction = %q", sys)
	}

	// An explicit model name wins over the path.
	p = mustProvider(t, domain.ModelLocal, map[string]any{"host": host, "port": port, "model_path": "/models/x", "model": "served-name"})
	if _, err := p.Generate(context.Background(), textRequest(t, domain.TypeTextGeneration, "hi", nil), nil); err != nil {
		t.Fatalf("generate: %v", err)
	}
	if m := s.Requests()[1].Body["model"]; m != "served-name" {
		t.Errorf("model = %v, want served-name", m)
	}
}

func TestLocalConfigValidation(t *testing.T) {
	tests := []struct {
		desc string
		cfg  map[string]any
		want string
	}{
		{"spec example", map[string]any{"host": "localhost", "port": float64(8000), "model_path": "/models/llama-2-7b-chat", "max_tokens": float64(2048), "temperature": 0.7}, ""},
		{"port as string", map[string]any{"host": "localhost", "port": "8000", "model": "m"}, ""},
		{"host missing", map[string]any{"port": float64(8000), "model": "m"}, "config.host is required"},
		{"host with scheme", map[string]any{"host": "http://x", "port": float64(1), "model": "m"}, "config.host must be a host name"},
		{"port missing", map[string]any{"host": "h", "model": "m"}, "config.port is required"},
		{"port out of range", map[string]any{"host": "h", "port": float64(70000), "model": "m"}, "config.port must be a whole number between 1 and 65535"},
		{"no model name", map[string]any{"host": "h", "port": float64(1)}, "config.model or config.model_path is required"},
		{"cloud metadata host", map[string]any{"host": "169.254.169.254", "port": float64(80), "model": "m"}, "config.host: outbound destination 169.254.169.254:80 refused"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			err := providers.Validate(domain.ModelLocal, tt.cfg)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("valid config refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestCustomTemplateEscapesInputsAndKeepsTypes(t *testing.T) {
	p := mustProvider(t, domain.ModelCustom, map[string]any{
		"url": "http://example.invalid/generate", "response_path": "text", "model": "mine", "max_tokens": float64(64),
		"body": map[string]any{
			"model": "{{model}}", "prompt": "{{prompt}}", "raw": "{{input}}",
			"options": map[string]any{"num_predict": "{{max_tokens}}", "temperature": "{{temperature}}"},
			"note":    "task {{task_id}} into {{params.target_language}}",
			"extra":   "{{parameters}}", "msgs": "{{messages}}", "fixed": true,
		},
	})
	input := "He said \"hi\"\n\tand left {{input}} \u2603 </script>"
	req := textRequest(t, domain.TypeTranslation, input, map[string]any{"target_language": "German"})
	req.TaskID = 42
	raw, err := providers.Unwrap(p).(*providers.Custom).Body(req)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("rendered body is not JSON: %v\n%s", err, raw)
	}
	if got["raw"] != input {
		t.Errorf("raw = %q, want the input unchanged %q", got["raw"], input)
	}
	if p, _ := got["prompt"].(string); !strings.HasPrefix(p, "Translate the following text into German.") || !strings.HasSuffix(p, input) {
		t.Errorf("prompt = %q", got["prompt"])
	}
	if diff := cmp.Diff(map[string]any{"num_predict": float64(64)}, got["options"]); diff != "" {
		t.Errorf("options (-want +got): %s (a missing temperature drops its key; max_tokens stays a number)", diff)
	}
	if got["note"] != "task 42 into German" || got["model"] != "mine" || got["fixed"] != true {
		t.Errorf("note %q model %v fixed %v", got["note"], got["model"], got["fixed"])
	}
	if _, ok := got["extra"]; ok {
		t.Errorf("parameters of a non-custom task rendered as %v", got["extra"])
	}
	if msgs, _ := got["msgs"].([]any); len(msgs) != 2 {
		t.Errorf("messages = %v", got["msgs"])
	}
}

func TestCustomPlainJSONAnswerWithUsage(t *testing.T) {
	s := newFake(t)
	s.Enqueue(fakeopenai.Reply{Content: "plain answer", Usage: &fakeopenai.Usage{PromptTokens: 5, CompletionTokens: 2}})
	p := mustProvider(t, domain.ModelCustom, map[string]any{
		"url": s.BaseURL() + "/chat/completions", "headers": map[string]any{"X-Api-Key": "custom-secret-123"},
		"body":          map[string]any{"model": "m", "messages": "{{messages}}", "max_tokens": "{{max_tokens}}"},
		"response_path": "choices.0.message.content", "prompt_tokens_path": "usage.prompt_tokens", "completion_tokens_path": "usage.completion_tokens",
	})
	var c collect
	res, err := p.Generate(context.Background(), textRequest(t, domain.TypeTextGeneration, "q", map[string]any{"max_tokens": float64(9)}), c.add)
	if err != nil {
		t.Fatalf("generate: %v", err)
	}
	if res.Output != "plain answer" || res.Usage != (providers.Usage{PromptTokens: 5, CompletionTokens: 2}) {
		t.Errorf("result = %+v", res)
	}
	got := s.Requests()[0]
	if got.Header.Get("X-Api-Key") != "custom-secret-123" || got.Body["max_tokens"] != float64(9) || got.LastUserMessage() != "q" {
		t.Errorf("request = %v %v", got.Header, got.Body)
	}
}

func TestCustomStreamsSSEAndNDJSON(t *testing.T) {
	tests := []struct {
		desc  string
		cfg   map[string]any
		usage providers.Usage
	}{
		{"sse (an OpenAI-style endpoint)", map[string]any{
			"path": "/v1/chat/completions", "stream": "sse", "chunk_path": "choices.0.delta.content", "response_path": "choices.0.message.content",
			"body":               map[string]any{"model": "m", "messages": "{{messages}}", "stream": true, "stream_options": map[string]any{"include_usage": true}},
			"prompt_tokens_path": "usage.prompt_tokens", "completion_tokens_path": "usage.completion_tokens",
		}, providers.Usage{PromptTokens: 4, CompletionTokens: 3}},
		{"ndjson (Ollama's /api/generate)", map[string]any{
			"path": "/api/generate", "stream": "ndjson", "chunk_path": "response", "done_path": "done", "response_path": "response",
			"body":               map[string]any{"model": "llama3", "prompt": "{{prompt}}"},
			"prompt_tokens_path": "prompt_eval_count", "completion_tokens_path": "eval_count",
		}, providers.Usage{PromptTokens: 4, CompletionTokens: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			s := newFake(t)
			reply := fakeopenai.Reply{Chunks: []string{"a ", "b ", "c"}, Usage: &fakeopenai.Usage{PromptTokens: 4, CompletionTokens: 3}}
			cfg := map[string]any{}
			for k, v := range tt.cfg {
				cfg[k] = v
			}
			cfg["url"] = s.URL + cfg["path"].(string)
			delete(cfg, "path")
			p := mustProvider(t, domain.ModelCustom, cfg)

			s.Enqueue(reply)
			var c collect
			res, err := p.Generate(context.Background(), textRequest(t, domain.TypeTextGeneration, "go", nil), c.add)
			if err != nil {
				t.Fatalf("generate: %v", err)
			}
			if res.Output != "a b c" || !cmp.Equal(c.chunks, []string{"a ", "b ", "c"}) || res.Usage != tt.usage {
				t.Errorf("output %q chunks %q usage %+v", res.Output, c.chunks, res.Usage)
			}

			for _, cut := range []fakeopenai.Reply{{Chunks: reply.Chunks, CutAfter: 2}, {Chunks: reply.Chunks, EndAfter: 2}} {
				s.Enqueue(cut)
				_, err := p.Generate(context.Background(), textRequest(t, domain.TypeTextGeneration, "go", nil), new(collect).add)
				pe := classified(t, err)
				if pe.Kind != providers.KindRetryable || pe.Partial != "a b " {
					t.Errorf("cut stream (cut %d, end %d): kind %s partial %q, want retryable with %q", cut.CutAfter, cut.EndAfter, pe.Kind, pe.Partial, "a b ")
				}
			}
		})
	}
}

func TestCustomErrorsAndSecrets(t *testing.T) {
	const secret = "custom-secret-abcdef"
	tests := []struct {
		reply fakeopenai.Reply
		kind  providers.ErrorKind
		after time.Duration
		msg   string
	}{
		{fakeopenai.Reply{Status: 400, ErrorMessage: "bad prompt for key " + secret}, providers.KindPermanent, 0, "bad prompt for key [redacted]"},
		{fakeopenai.Reply{Status: 429, ErrorMessage: "slow down", Header: map[string]string{"Retry-After": "2"}}, providers.KindRateLimited, 2 * time.Second, "slow down"},
		{fakeopenai.Reply{Status: 503, RawBody: `{"detail":"warming up"}`}, providers.KindRetryable, 0, "warming up"},
		{fakeopenai.Reply{Status: 502, RawBody: "<html>bad gateway</html>"}, providers.KindRetryable, 0, "bad gateway"},
	}
	for _, tt := range tests {
		s := newFake(t)
		s.Enqueue(tt.reply)
		p := mustProvider(t, domain.ModelCustom, map[string]any{
			"url": s.BaseURL() + "/chat/completions", "api_key": secret,
			"body": map[string]any{"messages": "{{messages}}"}, "response_path": "choices.0.message.content",
		})
		_, err := p.Generate(context.Background(), textRequest(t, domain.TypeTextGeneration, "q", nil), nil)
		pe := classified(t, err)
		if pe.Kind != tt.kind || pe.RetryAfter != tt.after || !strings.Contains(err.Error(), tt.msg) || strings.Contains(err.Error(), secret) {
			t.Errorf("status %d: got %s after %s %q, want %s after %s with %q and no secret", tt.reply.Status, pe.Kind, pe.RetryAfter, err, tt.kind, tt.after, tt.msg)
		}
		if a := s.Requests()[0].Header.Get("Authorization"); a != "Bearer "+secret {
			t.Errorf("Authorization = %q", a)
		}
	}
}

func TestCustomEmbeddings(t *testing.T) {
	s := newFake(t)
	s.Enqueue(fakeopenai.Reply{Embedding: []float64{1, 2, 3}})
	p := mustProvider(t, domain.ModelCustom, map[string]any{
		"url": s.BaseURL() + "/embeddings", "body": map[string]any{"model": "e", "input": "{{input}}"},
		"embedding_path": "data.0.embedding", "prompt_tokens_path": "usage.prompt_tokens",
	})
	res, err := providers.Run(context.Background(), p, textRequest(t, domain.TypeEmbedding, "x y", nil), nil)
	if err != nil {
		t.Fatalf("embed: %v", err)
	}
	if !cmp.Equal(res.Embedding, []float64{1, 2, 3}) || res.Usage.PromptTokens != 2 {
		t.Errorf("result = %+v", res)
	}
	// Without response_path the model refuses text tasks at once.
	if _, err := p.Generate(context.Background(), textRequest(t, domain.TypeTextGeneration, "q", nil), nil); classified(t, err).Kind != providers.KindPermanent {
		t.Errorf("text task on an embedding-only model: %v", err)
	}
}

func TestCustomConfigValidation(t *testing.T) {
	base := func(kv ...any) map[string]any {
		m := map[string]any{"url": "https://api.example.com/v1/generate", "body": map[string]any{"prompt": "{{prompt}}"}, "response_path": "text"}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
			} else {
				m[kv[i].(string)] = kv[i+1]
			}
		}
		return m
	}
	tests := []struct {
		desc string
		cfg  map[string]any
		want string
	}{
		{"valid", base(), ""},
		{"body as a JSON string", base("body", `{"q": "{{input}}"}`), ""},
		{"request_template, as the dashboard names it", base("body", nil, "request_template", `{"prompt": "{{input}}"}`), ""},
		{"request_template checked too", base("body", nil, "request_template", `{"prompt": "{{nope}}"}`), "unknown placeholder {{nope}}"},
		{"url missing", base("url", nil), "config.url is required"},
		{"url not http", base("url", "file:///etc/passwd"), "config.url must be an http(s) URL"},
		{"url at ipv6 link-local", base("url", "http://[fe80::1]:9000/x"), "config.url: outbound destination [fe80::1]:9000 refused"},
		{"bad method", base("method", "DELETE"), "config.method must be POST, PUT, PATCH or GET"},
		{"response_path missing", base("response_path", nil), "config.response_path is required"},
		{"body missing", base("body", nil), "config.body is required for POST"},
		{"body not JSON", base("body", "{nope"), "config.body must be a JSON value"},
		{"unknown placeholder", base("body", map[string]any{"x": "{{inptu}}"}), "unknown placeholder {{inptu}}"},
		{"stream without chunk_path", base("stream", "sse"), "config.chunk_path is required"},
		{"bad stream", base("stream", "websocket", "chunk_path", "x"), "config.stream must be"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			err := providers.Validate(domain.ModelCustom, tt.cfg)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("valid config refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestCheckParamsAgainstModelLimits(t *testing.T) {
	cfg := map[string]any{"model": "m", "max_tokens": float64(100)}
	if err := providers.CheckParams(cfg, map[string]any{"max_tokens": float64(100)}); err != nil {
		t.Errorf("max_tokens at the limit refused: %v", err)
	}
	err := providers.CheckParams(cfg, map[string]any{"max_tokens": float64(101)})
	if err == nil || !strings.Contains(err.Error(), "at most 100") {
		t.Errorf("max_tokens over the limit: %v", err)
	}
	if err := providers.CheckParams(map[string]any{"model": "m"}, map[string]any{"max_tokens": float64(100000)}); err != nil {
		t.Errorf("a model without max_tokens limited a task: %v", err)
	}
}

func TestEstimateRequestTokens(t *testing.T) {
	req := textRequest(t, domain.TypeTextGeneration, strings.Repeat("abcd", 100), nil)
	if got := providers.EstimateRequestTokens(req, 0); got != 100+4+providers.DefaultAnswerEstimate {
		t.Errorf("estimate without max_tokens = %d", got)
	}
	if got := providers.EstimateRequestTokens(req, 50); got != 100+4+50 {
		t.Errorf("estimate with the model's max_tokens = %d", got)
	}
	req = textRequest(t, domain.TypeTextGeneration, strings.Repeat("abcd", 100), map[string]any{"max_tokens": float64(10)})
	if got := providers.EstimateRequestTokens(req, 50); got != 100+4+10 {
		t.Errorf("estimate with the task's max_tokens = %d", got)
	}
	if got := providers.EstimateRequestTokens(textRequest(t, domain.TypeEmbedding, "abcdabcd", nil), 50); got != 2 {
		t.Errorf("embedding estimate = %d", got)
	}
}
