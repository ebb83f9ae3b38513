package providers_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/providers"
	"github.com/llmsched/llm-scheduler/internal/providers/fakeopenai"
)

func newFake(t *testing.T) *fakeopenai.Server {
	t.Helper()
	s := fakeopenai.New()
	t.Cleanup(s.Close)
	return s
}

func mustProvider(t *testing.T, typ domain.ModelType, cfg map[string]any) providers.Provider {
	t.Helper()
	p, err := providers.New(typ, cfg)
	if err != nil {
		t.Fatalf("new %s provider: %v", typ, err)
	}
	return p
}

func textRequest(t *testing.T, typ domain.TaskType, input string, params map[string]any) providers.Request {
	t.Helper()
	req, err := providers.BuildRequest(1, 1, typ, input, params)
	if err != nil {
		t.Fatalf("build request: %v", err)
	}
	return req
}

// collect is a StreamFunc that keeps the chunks.
type collect struct{ chunks []string }

func (c *collect) add(s string) error { c.chunks = append(c.chunks, s); return nil }

func classified(t *testing.T, err error) *providers.Error {
	t.Helper()
	var pe *providers.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a classified *providers.Error", err, err)
	}
	return pe
}

func TestOpenAIStreamsChatWithUsageAndConfig(t *testing.T) {
	s := newFake(t)
	s.Enqueue(fakeopenai.Reply{Chunks: []string{"Hello", ", ", "world"}, Usage: &fakeopenai.Usage{PromptTokens: 11, CompletionTokens: 3}})
	p := mustProvider(t, domain.ModelOpenAI, map[string]any{
		"api_key": "sk-test-1234567890", "base_url": s.BaseURL(), "model": "gpt-test",
		"max_tokens": float64(100), "temperature": 0.7, "organization": "org-42",
		"headers": map[string]any{"X-Gateway": "gw-value"},
	})
	req := textRequest(t, domain.TypeTextGeneration, "Say hello", map[string]any{"temperature": 0.2, "system_prompt": "Be brief."})
	var c collect
	res, err := p.Generate(context.Background(), req, c.add)
	if err != nil {
		t.Fatalf("generate: %v", err)
	}
	if res.Output != "Hello, world" {
		t.Errorf("output = %q, want %q", res.Output, "Hello, world")
	}
	if diff := cmp.Diff([]string{"Hello", ", ", "world"}, c.chunks); diff != "" {
		t.Errorf("streamed chunks (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(providers.Usage{PromptTokens: 11, CompletionTokens: 3}, res.Usage); diff != "" {
		t.Errorf("usage (-want +got):\n%s", diff)
	}
	got := s.Requests()[0]
	if got.Path != "/v1/chat/completions" {
		t.Errorf("path = %q", got.Path)
	}
	checks := map[string]any{
		"model": "gpt-test", "stream": true, "max_tokens": float64(100), "temperature": 0.2,
	}
	for k, want := range checks {
		if got.Body[k] != want {
			t.Errorf("body.%s = %v, want %v", k, got.Body[k], want)
		}
	}
	if so, _ := got.Body["stream_options"].(map[string]any); so["include_usage"] != true {
		t.Errorf("stream_options = %v, want include_usage true", got.Body["stream_options"])
	}
	msgs, _ := got.Body["messages"].([]any)
	if len(msgs) != 2 || msgs[0].(map[string]any)["content"] != "Be brief." || got.LastUserMessage() != "Say hello" {
		t.Errorf("messages = %v", msgs)
	}
	for h, want := range map[string]string{"Authorization": "Bearer sk-test-1234567890", "OpenAI-Organization": "org-42", "X-Gateway": "gw-value"} {
		if v := got.Header.Get(h); v != want {
			t.Errorf("header %s = %q, want %q", h, v, want)
		}
	}
}

func TestOpenAIWithoutStreamAndWithoutKey(t *testing.T) {
	s := newFake(t)
	p := mustProvider(t, domain.ModelOpenAI, map[string]any{"base_url": s.BaseURL(), "model": "m"})
	res, err := p.Generate(context.Background(), textRequest(t, domain.TypeTextGeneration, "ping", nil), nil)
	if err != nil {
		t.Fatalf("generate: %v", err)
	}
	if res.Output != "echo: ping" || res.Usage.PromptTokens != 1 || res.Usage.CompletionTokens != 2 {
		t.Errorf("result = %+v", res)
	}
	got := s.Requests()[0]
	if _, streamed := got.Body["stream"]; streamed {
		t.Errorf("a call without a StreamFunc sent stream=%v", got.Body["stream"])
	}
	if a := got.Header.Get("Authorization"); a != "" {
		t.Errorf("Authorization = %q, want none without an api_key", a)
	}
	if _, ok := got.Body["max_tokens"]; ok {
		t.Errorf("max_tokens sent without any being set: %v", got.Body["max_tokens"])
	}
}

func TestOpenAICustomTaskPassesMessagesAndParameters(t *testing.T) {
	s := newFake(t)
	p := mustProvider(t, domain.ModelOpenAI, map[string]any{"base_url": s.BaseURL(), "model": "m"})
	req := textRequest(t, domain.TypeCustom, "", map[string]any{
		"messages":   []any{map[string]any{"role": "system", "content": "S"}, map[string]any{"role": "user", "content": "U"}},
		"parameters": map[string]any{"top_p": 0.5, "stop": []any{"\n"}, "stream": false},
	})
	var c collect
	if _, err := p.Generate(context.Background(), req, c.add); err != nil {
		t.Fatalf("generate: %v", err)
	}
	got := s.Requests()[0]
	if got.Body["top_p"] != 0.5 || !cmp.Equal(got.Body["stop"], []any{"\n"}) {
		t.Errorf("parameters not passed through: %v", got.Body)
	}
	if got.Body["stream"] != true {
		t.Errorf("a task parameter changed stream to %v", got.Body["stream"])
	}
	if got.LastUserMessage() != "U" {
		t.Errorf("messages = %v", got.Body["messages"])
	}
}

func TestOpenAIEmbeddings(t *testing.T) {
	s := newFake(t)
	s.Enqueue(fakeopenai.Reply{Embedding: []float64{0.25, -0.5, 1}, Usage: &fakeopenai.Usage{PromptTokens: 7}})
	p := mustProvider(t, domain.ModelOpenAI, map[string]any{"base_url": s.BaseURL(), "model": "chat", "embedding_model": "emb-small"})
	res, err := providers.Run(context.Background(), p, textRequest(t, domain.TypeEmbedding, "vector me", nil), nil)
	if err != nil {
		t.Fatalf("embed: %v", err)
	}
	if diff := cmp.Diff([]float64{0.25, -0.5, 1}, res.Embedding); diff != "" {
		t.Errorf("embedding (-want +got):\n%s", diff)
	}
	if res.Usage.PromptTokens != 7 {
		t.Errorf("prompt tokens = %d, want 7", res.Usage.PromptTokens)
	}
	got := s.Requests()[0]
	if got.Path != "/v1/embeddings" || got.Body["model"] != "emb-small" || got.Body["input"] != "vector me" {
		t.Errorf("request = %s %v", got.Path, got.Body)
	}
}

func TestOpenAIErrorClassification(t *testing.T) {
	tests := []struct {
		desc       string
		reply      fakeopenai.Reply
		kind       providers.ErrorKind
		retryAfter time.Duration
		message    string
	}{
		{"bad request", fakeopenai.Reply{Status: 400, ErrorMessage: "temperature is out of range", ErrorType: "invalid_request_error"}, providers.KindPermanent, 0, "temperature is out of range"},
		{"auth", fakeopenai.Reply{Status: 401, ErrorMessage: "Incorrect API key provided", ErrorType: "invalid_request_error", ErrorCode: "invalid_api_key"}, providers.KindPermanent, 0, "Incorrect API key provided"},
		{"forbidden", fakeopenai.Reply{Status: 403, ErrorMessage: "region not supported"}, providers.KindPermanent, 0, "region not supported"},
		{"unknown model", fakeopenai.Reply{Status: 404, ErrorMessage: "The model `nope` does not exist", ErrorCode: "model_not_found"}, providers.KindPermanent, 0, "does not exist"},
		{"unprocessable", fakeopenai.Reply{Status: 422, ErrorMessage: "messages: field required"}, providers.KindPermanent, 0, "field required"},
		{"context length", fakeopenai.Reply{Status: 400, ErrorMessage: "This model's maximum context length is 4097 tokens", ErrorCode: "context_length_exceeded"}, providers.KindPermanent, 0, "maximum context length"},
		{"context length as 500 (llama.cpp style)", fakeopenai.Reply{Status: 500, ErrorMessage: "the request exceeds the available context size"}, providers.KindPermanent, 0, "context size"},
		{"request timeout", fakeopenai.Reply{Status: 408, ErrorMessage: "timed out"}, providers.KindRetryable, 0, "timed out"},
		{"conflict", fakeopenai.Reply{Status: 409, ErrorMessage: "busy"}, providers.KindRetryable, 0, "busy"},
		{"server error", fakeopenai.Reply{Status: 500, ErrorMessage: "internal error"}, providers.KindRetryable, 0, "internal error"},
		{"overloaded with Retry-After", fakeopenai.Reply{Status: 503, ErrorMessage: "overloaded", Header: map[string]string{"Retry-After": "7"}}, providers.KindRetryable, 7 * time.Second, "overloaded"},
		{"rate limited with Retry-After", fakeopenai.Reply{Status: 429, ErrorMessage: "Rate limit reached", ErrorType: "requests", Header: map[string]string{"Retry-After": "3"}}, providers.KindRateLimited, 3 * time.Second, "Rate limit reached"},
		{"rate limited with reset headers", fakeopenai.Reply{Status: 429, ErrorMessage: "Rate limit reached for tokens", Header: map[string]string{
			"x-ratelimit-remaining-requests": "10", "x-ratelimit-remaining-tokens": "0",
			"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "6m0s"}}, providers.KindRateLimited, 6 * time.Minute, "tokens"},
		{"rate limited with retry-after-ms", fakeopenai.Reply{Status: 429, ErrorMessage: "slow down", Header: map[string]string{"retry-after-ms": "1500", "Retry-After": "2"}}, providers.KindRateLimited, 1500 * time.Millisecond, "slow down"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			s := newFake(t)
			s.Enqueue(tt.reply, tt.reply)
			p := mustProvider(t, domain.ModelOpenAI, map[string]any{"base_url": s.BaseURL(), "model": "m"})
			for _, stream := range []providers.StreamFunc{nil, new(collect).add} {
				_, err := p.Generate(context.Background(), textRequest(t, domain.TypeTextGeneration, "hi", nil), stream)
				pe := classified(t, err)
				if pe.Kind != tt.kind || pe.Status != tt.reply.Status || pe.RetryAfter != tt.retryAfter {
					t.Errorf("stream=%v: got kind %s status %d retry-after %s, want %s %d %s", stream != nil, pe.Kind, pe.Status, pe.RetryAfter, tt.kind, tt.reply.Status, tt.retryAfter)
				}
				if !strings.Contains(err.Error(), tt.message) {
					t.Errorf("error %q does not carry the provider's message %q", err, tt.message)
				}
			}
		})
	}
}

func TestOpenAIStreamCutIsARetryableFailureWithPartialOutput(t *testing.T) {
	for _, tt := range []struct {
		desc  string
		reply fakeopenai.Reply
	}{
		{"connection dropped mid-answer", fakeopenai.Reply{Chunks: []string{"one ", "two ", "three"}, CutAfter: 2}},
		{"clean end without finish_reason or [DONE]", fakeopenai.Reply{Chunks: []string{"one ", "two ", "three"}, EndAfter: 2}},
	} {
		t.Run(tt.desc, func(t *testing.T) {
			s := newFake(t)
			s.Enqueue(tt.reply)
			p := mustProvider(t, domain.ModelOpenAI, map[string]any{"base_url": s.BaseURL(), "model": "m"})
			var c collect
			res, err := p.Generate(context.Background(), textRequest(t, domain.TypeTextGeneration, "count", nil), c.add)
			if err == nil {
				t.Fatalf("a cut stream succeeded with %q", res.Output)
			}
			pe := classified(t, err)
			if pe.Kind != providers.KindRetryable || pe.Partial != "one two " {
				t.Errorf("got kind %s partial %q, want retryable with %q", pe.Kind, pe.Partial, "one two ")
			}
		})
	}
}

func TestOpenAIConnectionErrorsRetry(t *testing.T) {
	s := newFake(t)
	url := s.BaseURL()
	s.Close() // nothing listens there any more
	p := mustProvider(t, domain.ModelOpenAI, map[string]any{"base_url": url, "model": "m"})
	_, err := p.Generate(context.Background(), textRequest(t, domain.TypeTextGeneration, "hi", nil), new(collect).add)
	if pe := classified(t, err); pe.Kind != providers.KindRetryable {
		t.Errorf("connection refused: kind %s, want retryable (%v)", pe.Kind, err)
	}
}

func TestOpenAITimeoutSeconds(t *testing.T) {
	s := newFake(t)
	s.Enqueue(fakeopenai.Reply{Delay: 5 * time.Second, Content: "late"})
	p := mustProvider(t, domain.ModelOpenAI, map[string]any{"base_url": s.BaseURL(), "model": "m", "timeout_seconds": 0.1})
	_, err := p.Generate(context.Background(), textRequest(t, domain.TypeTextGeneration, "hi", nil), new(collect).add)
	if pe := classified(t, err); pe.Kind != providers.KindTimeout {
		t.Errorf("kind %s, want timeout (%v)", pe.Kind, err)
	}
}

func TestOpenAICancelClosesTheUpstreamConnection(t *testing.T) {
	s := newFake(t)
	s.Enqueue(fakeopenai.Reply{Chunks: []string{"first "}, Hang: true})
	p := mustProvider(t, domain.ModelOpenAI, map[string]any{"base_url": s.BaseURL(), "model": "m"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := p.Generate(ctx, textRequest(t, domain.TypeTextGeneration, "hi", nil), func(string) error {
		cancel() // the task is cancelled once output flows
		return nil
	})
	if err == nil {
		t.Fatal("a cancelled stream succeeded")
	}
	select {
	case path := <-s.Disconnected:
		if path != "/v1/chat/completions" {
			t.Errorf("disconnect seen on %s", path)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server never saw the client go away")
	}
}

func TestOpenAIErrorsNeverCarrySecrets(t *testing.T) {
	const key = "sk-live-SECRET-0123456789"
	const gw = "gateway-secret-token-xyz"
	s := newFake(t)
	s.Enqueue(fakeopenai.Reply{Status: 401, ErrorMessage: "Incorrect API key provided: " + key + " (header " + gw + ")"})
	p := mustProvider(t, domain.ModelOpenAI, map[string]any{"base_url": s.BaseURL(), "model": "m", "api_key": key, "headers": map[string]any{"X-Gateway-Key": gw}})
	_, err := p.Generate(context.Background(), textRequest(t, domain.TypeTextGeneration, "hi", nil), new(collect).add)
	if err == nil {
		t.Fatal("want an error")
	}
	if strings.Contains(err.Error(), key) || strings.Contains(err.Error(), gw) {
		t.Errorf("error leaks a secret: %v", err)
	}
	if !strings.Contains(err.Error(), "Incorrect API key provided") {
		t.Errorf("error lost the provider's message: %v", err)
	}
	if pe := classified(t, err); pe.Kind != providers.KindPermanent {
		t.Errorf("kind %s, want permanent", pe.Kind)
	}
}

func TestOpenAIConfigValidation(t *testing.T) {
	tests := []struct {
		desc string
		cfg  map[string]any
		want string // substring of the error; "" means valid
	}{
		{"minimal", map[string]any{"model": "gpt-4o-mini"}, ""},
		{"full", map[string]any{"api_key": "k", "base_url": "http://localhost:8000/v1", "model": "m", "max_tokens": float64(4096), "temperature": 0.7,
			"organization": "o", "headers": map[string]any{"X-A": "b"}, "timeout_seconds": float64(30), "rpm": float64(60), "tpm": float64(1000)}, ""},
		{"model missing", map[string]any{"api_key": "k"}, "config.model is required"},
		{"bad base_url", map[string]any{"model": "m", "base_url": "ftp://x"}, "config.base_url must be an http(s) URL"},
		{"base_url at cloud metadata", map[string]any{"model": "m", "base_url": "http://169.254.169.254/v1"}, "config.base_url: outbound destination 169.254.169.254:80 refused: link-local or cloud-metadata address"},
		{"base_url at a metadata name", map[string]any{"model": "m", "base_url": "http://metadata.google.internal/v1"}, "config.base_url: outbound destination metadata.google.internal refused"},
		{"base_url not a string", map[string]any{"model": "m", "base_url": 5.0}, "config.base_url must be a string"},
		{"temperature out of range", map[string]any{"model": "m", "temperature": 3.0}, "config.temperature must be a number between 0 and 2"},
		{"max_tokens fractional", map[string]any{"model": "m", "max_tokens": 1.5}, "config.max_tokens must be a whole number"},
		{"headers not an object", map[string]any{"model": "m", "headers": "x"}, "config.headers must be an object"},
		{"header value not a string", map[string]any{"model": "m", "headers": map[string]any{"X-A": 1.0}}, "config.headers.X-A"},
		{"negative timeout", map[string]any{"model": "m", "timeout_seconds": -1.0}, "config.timeout_seconds"},
		{"rpm zero", map[string]any{"model": "m", "rpm": 0.0}, "config.rpm must be a whole number between 1"},
		{"tpm not a number", map[string]any{"model": "m", "tpm": "lots"}, "config.tpm"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			err := providers.Validate(domain.ModelOpenAI, tt.cfg)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("valid config refused: %v", err)
			case tt.want != "" && err == nil:
				t.Errorf("invalid config accepted, want %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Errorf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

func TestRetryAfterHeaders(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		desc string
		h    map[string]string
		want time.Duration
	}{
		{"none", nil, 0},
		{"seconds", map[string]string{"Retry-After": "12"}, 12 * time.Second},
		{"http date", map[string]string{"Retry-After": now.Add(90 * time.Second).Format(http.TimeFormat)}, 90 * time.Second},
		{"milliseconds win", map[string]string{"retry-after-ms": "250", "Retry-After": "1"}, 250 * time.Millisecond},
		{"request reset", map[string]string{"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1.5s", "x-ratelimit-reset-tokens": "1m"}, 1500 * time.Millisecond},
		{"longest reset when unsure", map[string]string{"x-ratelimit-reset-requests": "20ms", "x-ratelimit-reset-tokens": "2m30s"}, 150 * time.Second},
		{"capped", map[string]string{"Retry-After": "9999999"}, 24 * time.Hour},
		{"garbage", map[string]string{"Retry-After": "soon"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.h {
				h.Set(k, v)
			}
			if got := providers.RetryAfter(h, now); got != tt.want {
				t.Errorf("RetryAfter = %s, want %s", got, tt.want)
			}
		})
	}
}
