package providers

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/ssestream"

	"github.com/llmsched/llm-scheduler/internal/domain"
)

func init() { Register(domain.ModelOpenAI, NewOpenAI) }

// DefaultOpenAIBaseURL is where an openai model goes without a base_url.
const DefaultOpenAIBaseURL = "https://api.openai.com/v1"

// OpenAIConfig is the config of an openai model: any OpenAI-compatible API
// (OpenAI, vLLM, Ollama, llama.cpp server, LM Studio).
type OpenAIConfig struct {
	// APIKey is sent as "Authorization: Bearer". Optional: local servers
	// often need none.
	APIKey string
	// BaseURL is the API root, default https://api.openai.com/v1.
	BaseURL string
	// Model is the model name sent with each request (required).
	Model string
	// EmbeddingModel is the model for embedding tasks, default Model.
	EmbeddingModel string
	// MaxTokens and Temperature are defaults a task may override.
	MaxTokens   int
	Temperature *float64
	// Organization is sent as OpenAI-Organization.
	Organization string
	// Headers are extra request headers (e.g. a gateway's key).
	Headers map[string]string
	// Timeout bounds one request (config timeout_seconds); the attempt's
	// own timeout (queue.task_timeout) applies as well.
	Timeout time.Duration
}

func parseOpenAIConfig(raw map[string]any) (OpenAIConfig, error) {
	c := &configReader{raw: raw}
	cfg := OpenAIConfig{
		APIKey:         c.str("api_key"),
		BaseURL:        c.httpURL("base_url"),
		Model:          c.required("model"),
		EmbeddingModel: c.str("embedding_model"),
		MaxTokens:      c.integer("max_tokens", 1, 10_000_000),
		Temperature:    c.number("temperature", 0, 2),
		Organization:   c.str("organization"),
		Headers:        c.headers("headers"),
		Timeout:        c.seconds("timeout_seconds", 86400),
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultOpenAIBaseURL
	}
	return cfg, c.err()
}

// OpenAI speaks the OpenAI chat completions and embeddings API through the
// official SDK, with the SDK's own retries off: the scheduler owns retrying
// and reads the status and rate-limit headers from each failure.
type OpenAI struct {
	cfg   OpenAIConfig
	chat  openai.ChatCompletionService
	embed openai.EmbeddingService
}

// NewOpenAI validates an openai model's config and builds its provider.
func NewOpenAI(raw map[string]any) (Provider, error) {
	cfg, err := parseOpenAIConfig(raw)
	if err != nil {
		return nil, err
	}
	return newOpenAI(cfg), nil
}

func newOpenAI(cfg OpenAIConfig) *OpenAI {
	// The services are built directly rather than with openai.NewClient,
	// which would also read OPENAI_* environment variables: a model's
	// requests must carry its own config only.
	opts := []option.RequestOption{
		option.WithHTTPClient(sharedHTTP),
		option.WithBaseURL(strings.TrimRight(cfg.BaseURL, "/") + "/"),
		option.WithMaxRetries(0),
		option.WithMiddleware(answerCheck),
	}
	if cfg.APIKey != "" {
		opts = append(opts, option.WithAPIKey(cfg.APIKey))
	}
	if cfg.Organization != "" {
		opts = append(opts, option.WithOrganization(cfg.Organization))
	}
	for k, v := range cfg.Headers {
		opts = append(opts, option.WithHeader(k, v))
	}
	return &OpenAI{
		cfg:   cfg,
		chat:  openai.NewChatCompletionService(opts...),
		embed: openai.NewEmbeddingService(opts...),
	}
}

func (p *OpenAI) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if p.cfg.Timeout > 0 {
		return context.WithTimeout(ctx, p.cfg.Timeout)
	}
	return context.WithCancel(ctx)
}

// streamKeys are request fields the provider owns; a custom task's
// parameters cannot change them.
var streamKeys = map[string]bool{"stream": true, "stream_options": true, "messages": true}

func (p *OpenAI) chatParams(req Request, stream bool) (openai.ChatCompletionNewParams, []option.RequestOption) {
	params := openai.ChatCompletionNewParams{Model: p.cfg.Model}
	for _, m := range req.Messages {
		switch m.Role {
		case "system":
			params.Messages = append(params.Messages, openai.SystemMessage(m.Content))
		case "assistant":
			params.Messages = append(params.Messages, openai.AssistantMessage(m.Content))
		case "developer":
			params.Messages = append(params.Messages, openai.DeveloperMessage(m.Content))
		default:
			params.Messages = append(params.Messages, openai.UserMessage(m.Content))
		}
	}
	switch {
	case req.MaxTokens != nil:
		params.MaxTokens = openai.Int(int64(*req.MaxTokens))
	case p.cfg.MaxTokens > 0:
		params.MaxTokens = openai.Int(int64(p.cfg.MaxTokens))
	}
	switch {
	case req.Temperature != nil:
		params.Temperature = openai.Float(*req.Temperature)
	case p.cfg.Temperature != nil:
		params.Temperature = openai.Float(*p.cfg.Temperature)
	}
	if stream {
		params.StreamOptions.IncludeUsage = openai.Bool(true)
	}
	var opts []option.RequestOption
	for k, v := range req.Extra {
		if !streamKeys[k] {
			opts = append(opts, option.WithJSONSet(k, v))
		}
	}
	return params, opts
}

// Generate runs a chat completion. With stream set it streams over SSE and
// passes each content delta on; a stream that ends before a finish_reason
// (cut off, or closed early) is a retryable failure that keeps the output
// received so far in Error.Partial.
func (p *OpenAI) Generate(ctx context.Context, req Request, stream StreamFunc) (Result, error) {
	ctx, cancel := p.withTimeout(ctx)
	defer cancel()
	if req.OpenAI != nil {
		return p.passthrough(ctx, req, stream)
	}
	if stream == nil {
		params, opts := p.chatParams(req, false)
		res, err := p.chat.New(ctx, params, opts...)
		if err != nil {
			return Result{}, p.classify(ctx, err, "")
		}
		if len(res.Choices) == 0 {
			return Result{}, Retryable(errors.New("the answer had no choices"))
		}
		out := res.Choices[0].Message.Content
		r := Result{Output: out, FinishReason: cmp.Or(res.Choices[0].FinishReason, FinishUnknown)}
		r.Usage, r.TokenSource = usageOf(res.Usage, req, out)
		return r, nil
	}
	params, opts := p.chatParams(req, true)
	ctx, end := withStreamEnd(ctx)
	s := p.chat.NewStreaming(ctx, params, opts...)
	defer s.Close()
	return p.readStream(ctx, s, end, req, stream)
}

// readStream reads a chat completion stream. The answer is complete when a
// choice says why it finished, or when the stream closes with [DONE] (some
// servers never send a finish_reason; it is then stored as unknown); a
// stream that ends otherwise was cut.
func (p *OpenAI) readStream(ctx context.Context, s *ssestream.Stream[openai.ChatCompletionChunk], end *streamEnd, req Request, stream StreamFunc) (Result, error) {
	var out strings.Builder
	var usage *openai.CompletionUsage
	finish := ""
	for s.Next() {
		c := s.Current()
		if c.JSON.Usage.Valid() && (c.Usage.PromptTokens > 0 || c.Usage.CompletionTokens > 0) {
			u := c.Usage
			usage = &u
		}
		delta := ""
		for _, ch := range c.Choices {
			if ch.Index != 0 {
				continue
			}
			delta += ch.Delta.Content
			if ch.FinishReason != "" {
				finish = ch.FinishReason
			}
		}
		out.WriteString(delta)
		var err error
		switch {
		case req.OnRawChunk != nil:
			err = req.OnRawChunk([]byte(c.RawJSON()), delta)
		case delta != "":
			err = stream(delta)
		}
		if err != nil {
			return Result{}, &Error{Kind: KindRetryable, Partial: out.String(), Err: err}
		}
	}
	if err := s.Err(); err != nil {
		return Result{}, p.classify(ctx, err, out.String())
	}
	if finish == "" && end.done.Load() {
		finish = FinishUnknown
	}
	if finish == "" {
		return Result{}, &Error{Kind: KindRetryable, Partial: out.String(),
			Err: errors.New("the stream ended before the answer was finished (no finish_reason and no [DONE])")}
	}
	res := Result{Output: out.String(), FinishReason: finish}
	if usage != nil {
		res.Usage, res.TokenSource = usageOf(*usage, req, res.Output)
	} else {
		res.Usage, res.TokenSource = estimateUsage(req, res.Output), TokensEstimated
	}
	return res, nil
}

// passthrough sends a front-door request's OpenAI body as it is (see
// Request.OpenAI), with this model's name, its default max_tokens and
// temperature where the body sets none, and usage asked for in streams.
// A streamed answer's chunks go to req.OnRawChunk when set (else their
// content to stream); an answer that is not streamed comes back whole in
// Result.Raw.
func (p *OpenAI) passthrough(ctx context.Context, req Request, stream StreamFunc) (Result, error) {
	streamed, _ := req.OpenAI["stream"].(bool)
	body, err := json.Marshal(p.passthroughBody(req.OpenAI, streamed))
	if err != nil {
		return Result{}, Permanent(fmt.Errorf("encode the request body: %w", err))
	}
	// The params only choose the path and the answer's type: the body
	// replaces what they would have sent.
	params := openai.ChatCompletionNewParams{Model: p.cfg.Model}
	opts := []option.RequestOption{option.WithRequestBody("application/json", body)}
	if streamed {
		ctx, end := withStreamEnd(ctx)
		s := p.chat.NewStreaming(ctx, params, opts...)
		defer s.Close()
		return p.readStream(ctx, s, end, req, stream)
	}
	res, err := p.chat.New(ctx, params, opts...)
	if err != nil {
		return Result{}, p.classify(ctx, err, "")
	}
	if len(res.Choices) == 0 {
		return Result{}, Retryable(errors.New("the answer had no choices"))
	}
	out := res.Choices[0].Message.Content
	r := Result{Output: out, FinishReason: cmp.Or(res.Choices[0].FinishReason, FinishUnknown), Raw: json.RawMessage(res.RawJSON())}
	r.Usage, r.TokenSource = usageOf(res.Usage, req, out)
	return r, nil
}

func (p *OpenAI) passthroughBody(in map[string]any, streamed bool) map[string]any {
	body := make(map[string]any, len(in)+2)
	for k, v := range in {
		body[k] = v
	}
	body["model"] = p.cfg.Model
	if streamed {
		so := map[string]any{}
		if old, ok := body["stream_options"].(map[string]any); ok {
			for k, v := range old {
				so[k] = v
			}
		}
		so["include_usage"] = true // the scheduler stores the usage
		body["stream_options"] = so
	} else {
		delete(body, "stream_options") // refused without a stream
	}
	_, max1 := body["max_tokens"]
	_, max2 := body["max_completion_tokens"]
	if !max1 && !max2 && p.cfg.MaxTokens > 0 {
		body["max_tokens"] = p.cfg.MaxTokens
	}
	if _, ok := body["temperature"]; !ok && p.cfg.Temperature != nil {
		body["temperature"] = *p.cfg.Temperature
	}
	return body
}

// usageOf converts reported usage, estimating when the server sent none.
func usageOf(u openai.CompletionUsage, req Request, output string) (Usage, string) {
	if u.PromptTokens == 0 && u.CompletionTokens == 0 {
		return estimateUsage(req, output), TokensEstimated
	}
	return Usage{PromptTokens: int(u.PromptTokens), CompletionTokens: int(u.CompletionTokens)}, TokensReported
}

func estimateUsage(req Request, output string) Usage {
	n := EstimateTokens(req.Input)
	if len(req.Messages) > 0 {
		n = 0
		for _, m := range req.Messages {
			n += EstimateTokens(m.Content)
		}
	}
	return Usage{PromptTokens: n, CompletionTokens: EstimateTokens(output)}
}

// Embed calls the embeddings endpoint with the task's input.
func (p *OpenAI) Embed(ctx context.Context, req Request) (Result, error) {
	ctx, cancel := p.withTimeout(ctx)
	defer cancel()
	model := p.cfg.EmbeddingModel
	if model == "" {
		model = p.cfg.Model
	}
	// A front-door request's other fields (dimensions, user) pass through.
	var opts []option.RequestOption
	for k, v := range req.OpenAI {
		if k != "model" && k != "input" && k != "encoding_format" {
			opts = append(opts, option.WithJSONSet(k, v))
		}
	}
	res, err := p.embed.New(ctx, openai.EmbeddingNewParams{
		Model: model,
		Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String(req.Input)},
		// Plain floats: every OpenAI-compatible server speaks them.
		EncodingFormat: openai.EmbeddingNewParamsEncodingFormatFloat,
	}, opts...)
	if err != nil {
		return Result{}, p.classify(ctx, err, "")
	}
	if len(res.Data) == 0 || len(res.Data[0].Embedding) == 0 {
		return Result{}, Retryable(errors.New("the embeddings answer had no vector"))
	}
	r := Result{Embedding: res.Data[0].Embedding, Usage: Usage{PromptTokens: int(res.Usage.PromptTokens)}, TokenSource: TokensReported}
	if r.Usage.PromptTokens == 0 {
		r.Usage.PromptTokens, r.TokenSource = EstimateTokens(req.Input), TokensEstimated
	}
	return r, nil
}

// classify turns an SDK error into a classified *Error without secrets.
// HTTP errors and answers that are not an API were classified by
// answerCheck already; an error event inside a stream is classified by its
// code; anything else is a transport error.
func (p *OpenAI) classify(ctx context.Context, err error, partial string) error {
	var pe *Error
	if errors.As(err, &pe) {
		cp := *pe
		cp.Partial = partial
		return &cp
	}
	var se *ssestream.StreamError
	if errors.As(err, &se) {
		return streamErrorEvent(se.Event.Data, partial)
	}
	return transportError(ctx, err, partial)
}
