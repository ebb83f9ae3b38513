package scheduler

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/providers"
)

// validated is a NewTask that passed validation.
type validated struct {
	NewTask
	typ      domain.TaskType
	priority int
	retries  int
	// runAt is when the task was asked to run; scheduled is true when that
	// is still ahead (the task waits for the due scanner, not in a queue).
	runAt     *time.Time
	scheduled bool
	caller    string
	// key is the submitting API key (nil without one).
	key *ent.APIKey
	// callback is the resolved callback URL (the request's or the key's).
	callback *string
}

func (s *Tasks) validateTask(n NewTask, prefix string) (validated, error) {
	v := validated{NewTask: n}
	f := func(name string) string { return prefix + name }
	if n.ModelID <= 0 {
		return v, Invalid(f("model_id"), "is required and must be a positive integer")
	}
	t, err := domain.ParseTaskType(n.Type)
	if err != nil {
		return v, Invalid(f("type"), "must be one of %s, got %q", joinTypes(domain.TaskTypes()), n.Type)
	}
	v.typ = t
	if strings.TrimSpace(n.Input) == "" && !(t == domain.TypeCustom && n.Params["messages"] != nil) {
		return v, Invalid(f("input"), "must not be empty")
	}
	if limit := s.cfg.Queue.MaxInputBytes; len(n.Input) > limit {
		return v, &Error{Code: CodeInvalid, Field: f("input"),
			Message: fmt.Sprintf("%s: is %d bytes, over the limit of %d bytes", f("input"), len(n.Input), limit)}
	}
	if !utf8.ValidString(n.Input) {
		return v, Invalid(f("input"), "must be valid UTF-8")
	}
	v.priority = int(domain.PriorityMedium)
	if n.Priority != nil {
		if !domain.Priority(*n.Priority).Valid() {
			return v, Invalid(f("priority"), "must be 1 (low), 2 (medium) or 3 (high), got %d", *n.Priority)
		}
		v.priority = *n.Priority
	}
	v.retries = s.cfg.Queue.MaxRetries
	if n.MaxRetries != nil {
		if *n.MaxRetries < 0 || *n.MaxRetries > 100 {
			return v, Invalid(f("max_retries"), "must be between 0 and 100, got %d", *n.MaxRetries)
		}
		v.retries = *n.MaxRetries
	}
	if n.TimeoutSeconds != nil && (*n.TimeoutSeconds < 1 || *n.TimeoutSeconds > 86400) {
		return v, Invalid(f("timeout_seconds"), "must be between 1 and 86400, got %d", *n.TimeoutSeconds)
	}
	if len(n.IdempotencyKey) > 255 {
		return v, Invalid("idempotency_key", "must be at most 255 characters")
	}
	if err := validateParams(t, n.Params, f("params")); err != nil {
		return v, err
	}
	if err := s.validateSchedule(&v, f); err != nil {
		return v, err
	}
	if n.APIKeyID != nil && n.Caller != "" {
		// A key speaks for itself: with labels a key could take turns in
		// fair share under many names.
		return v, Invalid(f("caller"), "is set from the API key when auth is on; leave it out")
	}
	v.caller = domain.AnonymousCaller
	if n.Caller != "" {
		if err := ValidCaller(n.Caller); err != nil {
			return v, Invalid(f("caller"), "%s", err.Error())
		}
		v.caller = n.Caller
	}
	return v, nil
}

// ValidCaller checks a caller label: 1 to 128 printable characters, no
// leading or trailing space.
func ValidCaller(c string) error {
	if c == "" || len(c) > 128 || strings.TrimSpace(c) != c || !utf8.ValidString(c) {
		return errors.New("must be 1 to 128 characters without leading or trailing spaces")
	}
	for _, r := range c {
		if !unicode.IsPrint(r) {
			return errors.New("must hold printable characters only")
		}
	}
	return nil
}

func joinTypes[T ~string](ts []T) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = string(t)
	}
	return strings.Join(parts, ", ")
}

// validateParams checks the type-specific parameters.
func validateParams(t domain.TaskType, p map[string]any, field string) error {
	str := func(k string, required bool) error {
		v, ok := p[k]
		if !ok || v == nil {
			if required {
				return Invalid(field+"."+k, "is required for %s tasks", t)
			}
			return nil
		}
		s, ok := v.(string)
		if !ok || strings.TrimSpace(s) == "" || len(s) > 10000 {
			return Invalid(field+"."+k, "must be a non-empty string of at most 10000 bytes")
		}
		return nil
	}
	if v, ok := p["max_tokens"]; ok && v != nil {
		n, isNum := v.(float64)
		if iv, isInt := v.(int); isInt {
			n, isNum = float64(iv), true
		}
		if !isNum || n != math.Trunc(n) || n < 1 || n > 1_000_000 {
			return Invalid(field+".max_tokens", "must be an integer between 1 and 1000000")
		}
	}
	if v, ok := p["temperature"]; ok && v != nil {
		n, isNum := v.(float64)
		if iv, isInt := v.(int); isInt {
			n, isNum = float64(iv), true
		}
		if !isNum || n < 0 || n > 2 {
			return Invalid(field+".temperature", "must be a number between 0 and 2")
		}
	}
	if err := str("system_prompt", false); err != nil {
		return err
	}
	switch t {
	case domain.TypeTranslation:
		if err := str("target_language", true); err != nil {
			return err
		}
		if err := str("source_language", false); err != nil {
			return err
		}
	case domain.TypeSummarization:
		if err := str("length", false); err != nil {
			return err
		}
	case domain.TypeCustom:
		if v, ok := p["messages"]; ok && v != nil {
			msgs, ok := v.([]any)
			if !ok || len(msgs) == 0 {
				return Invalid(field+".messages", "must be a non-empty array of {role, content}")
			}
			for i, m := range msgs {
				mm, _ := m.(map[string]any)
				role, _ := mm["role"].(string)
				content, _ := mm["content"].(string)
				if role != "system" && role != "user" && role != "assistant" {
					return Invalid(fmt.Sprintf("%s.messages[%d].role", field, i), "must be system, user or assistant")
				}
				if content == "" {
					return Invalid(fmt.Sprintf("%s.messages[%d].content", field, i), "must be a non-empty string")
				}
			}
		}
		if v, ok := p["parameters"]; ok && v != nil {
			if _, ok := v.(map[string]any); !ok {
				return Invalid(field+".parameters", "must be an object")
			}
		}
	}
	return nil
}

// checkModelLimits refuses parameter overrides beyond the model's limits
// (a max_tokens above its config max_tokens), as providers.CheckParams
// says.
func checkModelLimits(m *ent.Model, params map[string]any, field string) error {
	err := providers.CheckParams(m.Config, params)
	var pe *providers.ParamError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pe):
		return Invalid(field+"."+pe.Key, "%s", pe.Message)
	default:
		return Invalid("model_id", "model %d has an invalid config: %v", m.ID, err)
	}
}

// validateSchedule reads run_at / delay_seconds into v.
func (s *Tasks) validateSchedule(v *validated, f func(string) string) error {
	if v.RunAt == nil && v.DelaySeconds == nil {
		return nil
	}
	if v.RunAt != nil && v.DelaySeconds != nil {
		return Invalid(f("delay_seconds"), "cannot be combined with run_at; give one of them")
	}
	now := s.now()
	var at time.Time
	if v.DelaySeconds != nil {
		if *v.DelaySeconds < 0 {
			return Invalid(f("delay_seconds"), "must not be negative, got %d", *v.DelaySeconds)
		}
		at = now.Add(time.Duration(*v.DelaySeconds) * time.Second)
	} else {
		at = *v.RunAt
	}
	limit := s.cfg.Queue.MaxScheduleAhead.D()
	if ahead := at.Sub(now); ahead > limit {
		name := f("run_at")
		if v.DelaySeconds != nil {
			name = f("delay_seconds")
		}
		return Invalid(name, "is %s ahead, over the limit (queue.max_schedule_ahead) of %s",
			ahead.Round(time.Second), limit)
	}
	at = at.UTC()
	v.runAt = &at
	v.scheduled = at.After(now)
	return nil
}
