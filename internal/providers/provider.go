// Package providers speaks to LLM endpoints. One small interface (generate
// with optional streaming, embed) has an implementation per model type:
// openai (any OpenAI-compatible API), local (the same protocol at
// http://host:port/v1), custom (a generic HTTP endpoint) and the built-in
// simulator. Errors are classified (see Error) so the scheduler knows whether
// to retry.
package providers

import (
	"context"
	"encoding/json"
	"fmt"
	cred "github.com/llmsched/llm-scheduler/internal/secrets"
	"sync"

	"github.com/llmsched/llm-scheduler/internal/domain"
)

// Message is one chat message.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Request is what a task asks of its model, already mapped from the task's
// type and parameters (see BuildRequest).
type Request struct {
	TaskID   int
	Attempt  int
	TaskType domain.TaskType
	// Input is the task's raw input.
	Input string
	// Messages is the chat conversation for text tasks.
	Messages []Message
	// MaxTokens and Temperature are per-task overrides (nil: the model's).
	MaxTokens   *int
	Temperature *float64
	// Extra carries provider parameters passed through (custom tasks).
	Extra map[string]any
	// Params are the task's parameters as submitted (request templates of
	// custom models read them, e.g. {{params.target_language}}).
	Params map[string]any
	// OpenAI is the request body in OpenAI's wire format of a task that came
	// through the OpenAI-compatible front door (server/openai.go): the
	// task's params.openai. Providers that speak OpenAI's protocol (openai,
	// local) send it as it is, with the model's own name, and stream when
	// it says "stream": true; the others answer Messages, built from it.
	OpenAI map[string]any
	// OnRawChunk, when set on a request with OpenAI, receives each chunk of
	// a streamed answer as the provider sent it (a chat.completion.chunk
	// object) with the chunk's content; a provider that calls it does not
	// call the StreamFunc. Returning an error aborts the call.
	OnRawChunk func(raw []byte, text string) error
}

// Usage is token usage as the provider reported it (or estimated).
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}

// Where a result's token counts came from.
const (
	// TokensReported: the provider sent usage.
	TokensReported = "reported"
	// TokensEstimated: the provider sent none (or not all), so the counts
	// are estimated from the text (EstimateTokens).
	TokensEstimated = "estimated"
)

// FinishUnknown is the finish reason of an answer that ended properly (a
// stream closed by [DONE]) without saying why.
const FinishUnknown = "unknown"

// Result is a successful answer.
type Result struct {
	Output    string
	Embedding []float64
	Usage     Usage
	// TokenSource is TokensReported or TokensEstimated.
	TokenSource string
	// FinishReason is why the model stopped, as the provider said
	// ("stop", "length", ...), FinishUnknown when it did not say, empty
	// where the protocol has no such thing (embeddings).
	FinishReason string
	// Raw is the provider's whole answer as it sent it (a chat.completion
	// object) when the request had OpenAI set and was not streamed.
	Raw json.RawMessage
}

// StreamFunc receives output chunks in order as they arrive. Returning an
// error aborts the call.
type StreamFunc func(chunk string) error

// Provider runs requests against one model.
type Provider interface {
	// Generate answers a text request. When stream is not nil and the
	// provider can stream, chunks are passed to it as they arrive, and
	// Result.Output is their concatenation.
	Generate(ctx context.Context, req Request, stream StreamFunc) (Result, error)
	// Embed returns the embedding vector of req.Input.
	Embed(ctx context.Context, req Request) (Result, error)
}

// Factory builds a provider from a model's config. It validates the config
// and returns an error naming the offending key.
type Factory func(config map[string]any) (Provider, error)

var (
	mu        sync.RWMutex
	factories = map[domain.ModelType]Factory{}
)

// Register makes a model type available. Each provider file registers itself
// in init.
func Register(t domain.ModelType, f Factory) {
	mu.Lock()
	defer mu.Unlock()
	factories[t] = f
}

// New builds the provider for a model. Besides the provider's own keys,
// every config may set the limits in LimitsOf (max_tokens, rpm, tpm).
func New(t domain.ModelType, config map[string]any) (Provider, error) {
	mu.RLock()
	f, ok := factories[t]
	mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("no provider for model type %q", t)
	}
	r := cred.NewRedactor(config)
	if _, err := LimitsOf(config); err != nil {
		return nil, redactError(r, err)
	}
	p, err := f(config)
	if err != nil {
		return nil, redactError(r, err)
	}
	return redacted{Provider: p, r: r}, nil
}

// Validate checks a model's config without keeping the provider.
func Validate(t domain.ModelType, config map[string]any) error {
	_, err := New(t, config)
	return err
}

// Run dispatches a request to Generate or Embed by task type.
func Run(ctx context.Context, p Provider, req Request, stream StreamFunc) (Result, error) {
	if req.TaskType == domain.TypeEmbedding {
		return p.Embed(ctx, req)
	}
	return p.Generate(ctx, req, stream)
}
