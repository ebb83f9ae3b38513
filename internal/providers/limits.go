package providers

import (
	"fmt"
	"math"

	"github.com/llmsched/llm-scheduler/internal/domain"
)

// Limits are the config keys every model type understands, whatever its
// provider: the largest answer a task may ask for, and the request and
// token rates the scheduler keeps to across all workers.
type Limits struct {
	// MaxTokens caps a task's max_tokens override (config max_tokens); 0
	// means no cap.
	MaxTokens int
	// RPM is requests per minute (config rpm); 0 means unlimited.
	RPM int
	// TPM is tokens per minute, prompt plus answer (config tpm); 0 means
	// unlimited.
	TPM int
}

// Limited reports whether a rate limit is set.
func (l Limits) Limited() bool { return l.RPM > 0 || l.TPM > 0 }

// LimitsOf reads and validates a model config's limits.
func LimitsOf(config map[string]any) (Limits, error) {
	c := &configReader{raw: config}
	l := Limits{
		MaxTokens: c.integer("max_tokens", 1, 10_000_000),
		RPM:       c.integer("rpm", 1, 10_000_000),
		TPM:       c.integer("tpm", 1, 1_000_000_000),
	}
	return l, c.err()
}

// ParamError is a task parameter that the model's limits refuse.
type ParamError struct {
	// Key is the parameter, e.g. "max_tokens".
	Key     string
	Message string
}

func (e *ParamError) Error() string { return fmt.Sprintf("params.%s %s", e.Key, e.Message) }

// CheckParams checks a task's parameter overrides against its model's
// config: a max_tokens above the model's config max_tokens is refused. The
// scheduler calls it at submission, once the model is known.
func CheckParams(modelConfig, params map[string]any) error {
	l, err := LimitsOf(modelConfig)
	if err != nil {
		return err
	}
	if v, ok := intParam(params, "max_tokens"); ok && l.MaxTokens > 0 && v > l.MaxTokens {
		return &ParamError{Key: "max_tokens", Message: fmt.Sprintf("must be at most %d (the model's max_tokens), got %d", l.MaxTokens, v)}
	}
	return nil
}

// DefaultAnswerEstimate is the answer size assumed by a token estimate when
// neither the task nor the model sets max_tokens.
const DefaultAnswerEstimate = 256

// EstimateRequestTokens guesses what a request will cost before it runs:
// its prompt (about four characters a token) plus the largest answer it may
// get (its max_tokens, else the model's, else DefaultAnswerEstimate).
// Embeddings have no answer.
func EstimateRequestTokens(req Request, modelMaxTokens int) int {
	n := EstimateTokens(req.Input)
	if len(req.Messages) > 0 {
		n = 0
		for _, m := range req.Messages {
			n += EstimateTokens(m.Content) + 4 // role and framing
		}
	}
	if req.TaskType == domain.TypeEmbedding {
		return max(n, 1)
	}
	answer := DefaultAnswerEstimate
	switch {
	case req.MaxTokens != nil:
		answer = *req.MaxTokens
	case modelMaxTokens > 0:
		answer = modelMaxTokens
	}
	return min(n+answer, math.MaxInt32)
}
