package scheduler

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/internal/apikeys"
	"github.com/llmsched/llm-scheduler/internal/secrets"
)

// submitter loads the API key of a submission (nil without one). A key
// deleted meanwhile cannot submit.
func (s *Tasks) submitter(ctx context.Context, v *validated) error {
	if v.APIKeyID == nil {
		return nil
	}
	k, err := s.keys.get(ctx, s.db, *v.APIKeyID)
	if ent.IsNotFound(err) {
		return &Error{Code: CodeUnauthenticated, Message: "the API key does not exist"}
	}
	if err != nil {
		return dbErr(err, "api key", *v.APIKeyID)
	}
	v.key = k
	return nil
}

// KeyError maps the apikeys package's errors to the domain's codes, for
// the REST and GraphQL adapters.
func KeyError(err error) error {
	var ie *apikeys.InvalidError
	var se *Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se):
		return se
	case errors.As(err, &ie):
		return Invalid(ie.Field, "%s", ie.Message)
	case errors.Is(err, apikeys.ErrNotFound):
		return &Error{Code: CodeNotFound, Message: err.Error()}
	}
	return Unavailable("database", err)
}

// ForgetKey drops a cached API key after a change, so that this process's
// next submission sees its new weight and budgets.
func (s *Tasks) ForgetKey(id int) { s.keys.forget(id) }

// Keys returns the API key service of this configuration: webhook secrets
// sealed with auth.encryption_key, default callback URLs checked like a
// task's.
func (s *Tasks) Keys() *apikeys.Service {
	return apikeys.New(s.db, apikeys.WithSealer(s.sealSecret), apikeys.WithURLCheck(func(raw, field string) error {
		return s.CheckCallbackURL(raw, field)
	}))
}

// sealSecret seals one secret with the configured keyring (unchanged in
// plaintext mode).
func (s *Tasks) sealSecret(v string) (string, error) {
	kr, err := secrets.FromConfig(s.cfg)
	if err != nil {
		return "", err
	}
	return kr.Seal(v)
}

// checkBudget refuses a submission of a key with budgets when the key's
// usage plus need (the new tasks' estimated input tokens) would go over a
// cap. Keys without budgets cost no query.
func (s *Tasks) checkBudget(ctx context.Context, k *ent.APIKey, modelID, need int) error {
	if k == nil {
		return nil
	}
	var modelCaps []ModelUsage
	for _, b := range k.ModelBudgets {
		if b.ModelID == modelID && (b.TokensPerDay != nil || b.TokensPerMonth != nil) {
			modelCaps = append(modelCaps, ModelUsage{ModelID: modelID})
		}
	}
	if k.TokensPerDay == nil && k.TokensPerMonth == nil && len(modelCaps) == 0 {
		return nil
	}
	u, err := s.usage.usageOf(ctx, k)
	if err != nil {
		return err
	}
	check := func(w BudgetWindow, model int) error {
		if w.Limit == nil || w.Used+need <= *w.Limit {
			return nil
		}
		b := &BudgetExceeded{Period: w.Period, ModelID: model, Limit: *w.Limit, Used: w.Used, ResetsAt: w.ResetsAt}
		on := ""
		if model > 0 {
			on = fmt.Sprintf(" on model %d", model)
		}
		return &Error{Code: CodeBudgetExceeded, Budget: b, RetryAfter: max(time.Until(w.ResetsAt), time.Second),
			Message: fmt.Sprintf("token budget exceeded: API key %q used %d of its %d tokens per %s%s (this task needs about %d more); it resets at %s",
				k.Name, w.Used, *w.Limit, w.Period, on, need, w.ResetsAt.Format(time.RFC3339))}
	}
	for _, w := range []BudgetWindow{u.Day, u.Month} {
		if err := check(w, 0); err != nil {
			return err
		}
	}
	for _, m := range u.Models {
		if m.ModelID != modelID {
			continue
		}
		for _, w := range []BudgetWindow{m.Day, m.Month} {
			if err := check(w, modelID); err != nil {
				return err
			}
		}
	}
	return nil
}
