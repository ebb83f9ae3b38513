package scheduler

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/ent/model"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/providers"
)

func (s *ModelAdmin) validateName(ctx context.Context, name string, except int) error {
	name = strings.TrimSpace(name)
	if name == "" {
		return Invalid("name", "must not be empty")
	}
	if len(name) > 128 {
		return Invalid("name", "must be at most 128 characters")
	}
	n, err := s.db.Model.Query().Where(model.Name(name), model.DeletedAtIsNil(), model.IDNEQ(except)).Count(ctx)
	if err != nil {
		return dbErr(err, "model", 0)
	}
	if n > 0 {
		return Conflict("a model named %q already exists", name)
	}
	return nil
}

func (s *ModelAdmin) validateMaxWorkers(v int) error {
	if v < 1 || v > s.cfg.Worker.MaxWorkers {
		return Invalid("max_workers", "must be between 1 and %d (worker.max_workers), got %d", s.cfg.Worker.MaxWorkers, v)
	}
	return nil
}

func (s *ModelAdmin) validateFallbacks(ctx context.Context, ids []int, self int) error {
	if len(ids) > 5 {
		return Invalid("fallbacks", "may name at most 5 models")
	}
	for i, id := range ids {
		if id == self && self != 0 {
			return Invalid(fmt.Sprintf("fallbacks[%d]", i), "a model cannot be its own fallback")
		}
		m, err := s.db.Model.Get(ctx, id)
		if ent.IsNotFound(err) || (err == nil && m.DeletedAt != nil) {
			return Invalid(fmt.Sprintf("fallbacks[%d]", i), "model %d does not exist", id)
		}
		if err != nil {
			return dbErr(err, "model", id)
		}
	}
	return nil
}

func validateConfig(t domain.ModelType, cfg map[string]any) error {
	if err := providers.Validate(t, cfg); err != nil {
		msg := err.Error()
		if !strings.HasPrefix(msg, "config") {
			msg = "config: " + msg
		}
		return &Error{Code: CodeInvalid, Field: "config", Message: msg}
	}
	return nil
}

// maxPrice bounds a model's price per million tokens.
const maxPrice = 1_000_000

// validatePrices checks a model's prices per million input and output
// tokens: finite numbers from 0 to maxPrice.
func validatePrices(in, out *float64) error {
	for _, p := range []struct {
		field string
		v     *float64
	}{{"input_price", in}, {"output_price", out}} {
		if p.v != nil && (math.IsNaN(*p.v) || *p.v < 0 || *p.v > maxPrice) {
			return Invalid(p.field, "must be a price per million tokens between 0 and %d, got %v", maxPrice, *p.v)
		}
	}
	return nil
}

// AttemptCost is what an attempt on m cost: its input (prompt) and output
// (completion) tokens at m's prices per million. A model without prices
// costs nothing.
func AttemptCost(m *ent.Model, promptTokens, completionTokens int) float64 {
	var c float64
	if m.InputPrice != nil {
		c += float64(promptTokens) * *m.InputPrice
	}
	if m.OutputPrice != nil {
		c += float64(completionTokens) * *m.OutputPrice
	}
	return c / 1e6
}
