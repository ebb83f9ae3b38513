package providers

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/loop"
)

func init() { Register(domain.ModelSimulator, NewSimulator) }

// SimulatorConfig is a simulator model's config. These keys are a contract
// that tests, bench and users rely on.
type SimulatorConfig struct {
	// LatencyMS is the time to the first token.
	LatencyMS int `json:"latency_ms"`
	// TokensPerSecond paces streaming; 0 emits everything at once.
	TokensPerSecond float64 `json:"tokens_per_second"`
	// OutputTokens is how many tokens (words) the answer has.
	OutputTokens int `json:"output_tokens"`
	// FailRate is the chance (0..1) that an attempt fails.
	FailRate float64 `json:"fail_rate"`
	// FailFirstN fails the first N attempts of each task.
	FailFirstN int `json:"fail_first_n"`
	// FailKind is retryable or permanent.
	FailKind string `json:"fail_kind"`
}

// Simulator is the built-in model: configurable latency, pace and failures,
// no network. It is labelled a simulator wherever it appears.
type Simulator struct{ cfg SimulatorConfig }

// NewSimulator validates cfg and builds a simulator.
func NewSimulator(raw map[string]any) (Provider, error) {
	c := SimulatorConfig{OutputTokens: 16, FailKind: "retryable"}
	var errs []error
	num := func(key string, dst *float64) {
		v, ok := raw[key]
		if !ok || v == nil {
			return
		}
		f, ok := toFloat(v)
		if !ok {
			errs = append(errs, fmt.Errorf("config.%s must be a number, got %v", key, v))
			return
		}
		*dst = f
	}
	var lat, tps, out, rate, firstN float64 = float64(c.LatencyMS), 0, float64(c.OutputTokens), 0, 0
	num("latency_ms", &lat)
	num("tokens_per_second", &tps)
	num("output_tokens", &out)
	num("fail_rate", &rate)
	num("fail_first_n", &firstN)
	if v, ok := raw["fail_kind"]; ok && v != nil {
		s, _ := v.(string)
		if s != "retryable" && s != "permanent" {
			errs = append(errs, fmt.Errorf("config.fail_kind must be retryable or permanent, got %v", v))
		}
		c.FailKind = s
	}
	if lat < 0 || lat > 600000 {
		errs = append(errs, fmt.Errorf("config.latency_ms must be between 0 and 600000, got %v", lat))
	}
	if tps < 0 {
		errs = append(errs, fmt.Errorf("config.tokens_per_second must not be negative, got %v", tps))
	}
	if out < 0 || out > 100000 {
		errs = append(errs, fmt.Errorf("config.output_tokens must be between 0 and 100000, got %v", out))
	}
	if rate < 0 || rate > 1 {
		errs = append(errs, fmt.Errorf("config.fail_rate must be between 0 and 1, got %v", rate))
	}
	if firstN < 0 {
		errs = append(errs, fmt.Errorf("config.fail_first_n must not be negative, got %v", firstN))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	c.LatencyMS, c.TokensPerSecond, c.OutputTokens, c.FailRate, c.FailFirstN = int(lat), tps, int(out), rate, int(firstN)
	return &Simulator{cfg: c}, nil
}

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	}
	return 0, false
}

func (s *Simulator) fail(req Request) error {
	if req.Attempt <= s.cfg.FailFirstN || (s.cfg.FailRate > 0 && rand.Float64() < s.cfg.FailRate) {
		err := fmt.Errorf("simulated failure on attempt %d", req.Attempt)
		if s.cfg.FailKind == "permanent" {
			return &Error{Kind: KindPermanent, Status: 400, Err: err}
		}
		return &Error{Kind: KindRetryable, Status: 503, Err: err}
	}
	return nil
}

func (s *Simulator) wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	return loop.Sleep(ctx, d)
}

// Generate streams OutputTokens words at TokensPerSecond after LatencyMS.
func (s *Simulator) Generate(ctx context.Context, req Request, stream StreamFunc) (Result, error) {
	if err := s.wait(ctx, time.Duration(s.cfg.LatencyMS)*time.Millisecond); err != nil {
		return Result{}, err
	}
	if err := s.fail(req); err != nil {
		return Result{}, err
	}
	var out strings.Builder
	var gap time.Duration
	if s.cfg.TokensPerSecond > 0 {
		gap = time.Duration(float64(time.Second) / s.cfg.TokensPerSecond)
	}
	words := strings.Fields(req.Input)
	for i := range s.cfg.OutputTokens {
		tok := fmt.Sprintf("tok%d", i)
		if len(words) > 0 {
			tok = words[i%len(words)]
		}
		if i == 0 {
			tok = "[simulated " + string(req.TaskType) + "] " + tok
		} else {
			tok = " " + tok
		}
		if i > 0 {
			if err := s.wait(ctx, gap); err != nil {
				return Result{}, &Error{Kind: KindRetryable, Partial: out.String(), Err: err}
			}
		}
		out.WriteString(tok)
		if stream != nil {
			if err := stream(tok); err != nil {
				return Result{}, &Error{Kind: KindRetryable, Partial: out.String(), Err: err}
			}
		}
	}
	return Result{
		Output: out.String(),
		Usage:  Usage{PromptTokens: EstimateTokens(req.Input), CompletionTokens: s.cfg.OutputTokens},
		// The simulator counts the tokens it emits but estimates the prompt.
		TokenSource: TokensEstimated, FinishReason: "stop",
	}, nil
}

// Embed returns a deterministic unit vector derived from the input.
func (s *Simulator) Embed(ctx context.Context, req Request) (Result, error) {
	if err := s.wait(ctx, time.Duration(s.cfg.LatencyMS)*time.Millisecond); err != nil {
		return Result{}, err
	}
	if err := s.fail(req); err != nil {
		return Result{}, err
	}
	const dim = 8
	vec := make([]float64, dim)
	var norm float64
	for i := range vec {
		h := fnv.New64a()
		fmt.Fprintf(h, "%d:%s", i, req.Input)
		vec[i] = float64(h.Sum64()%2000)/1000 - 1
		norm += vec[i] * vec[i]
	}
	norm = math.Sqrt(norm)
	for i := range vec {
		if norm > 0 {
			vec[i] /= norm
		}
	}
	return Result{Embedding: vec, Usage: Usage{PromptTokens: EstimateTokens(req.Input)}, TokenSource: TokensEstimated}, nil
}

// EstimateTokens guesses a token count: about four characters a token.
func EstimateTokens(s string) int { return (len(s) + 3) / 4 }
