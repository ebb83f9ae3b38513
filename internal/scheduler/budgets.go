package scheduler

import (
	"context"
	"fmt"
	"time"

	"entgo.io/ent/dialect/sql"
	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/ent/attempt"
)

// Token budgets: an API key may cap the tokens its tasks use per UTC day
// and per calendar month (UTC), overall and on single models. Usage is the
// tokens of the key's attempts (failed ones included) started in the
// period. A submission is refused (BUDGET_EXCEEDED, HTTP 429) when the
// usage plus the new task's estimated input tokens would go over a cap;
// tasks already accepted run to their end, and queued tasks count once they
// run. See docs/fairness.md.

// BudgetWindow is one budget period's usage.
type BudgetWindow struct {
	// Period is "day" or "month".
	Period string `json:"period"`
	Used   int    `json:"used"`
	// Limit is the cap, nil when there is none.
	Limit    *int      `json:"limit"`
	ResetsAt time.Time `json:"resets_at"`
}

// ModelUsage is a key's usage of one model with its own caps.
type ModelUsage struct {
	ModelID int          `json:"model_id"`
	Day     BudgetWindow `json:"day"`
	Month   BudgetWindow `json:"month"`
}

// KeyUsage is an API key's usage against its budgets.
type KeyUsage struct {
	KeyID  int          `json:"key_id"`
	Name   string       `json:"name"`
	Weight int          `json:"weight"`
	Day    BudgetWindow `json:"day"`
	Month  BudgetWindow `json:"month"`
	Models []ModelUsage `json:"models"`
}

// BudgetExceeded details a refused submission: which cap, the usage and
// when the period starts again.
type BudgetExceeded struct {
	Period string `json:"period"`
	// ModelID is set when the cap is on one model.
	ModelID  int       `json:"model_id,omitempty"`
	Limit    int       `json:"limit"`
	Used     int       `json:"used"`
	ResetsAt time.Time `json:"resets_at"`
}

// usageReader reads API keys' token usage, for budgets: Stats shows it,
// Tasks checks submissions against it.
type usageReader struct {
	db  *ent.Client
	now func() time.Time
}

// periods are the start and end of the UTC day and month around now.
func periods(now time.Time) (dayFrom, dayTo, monthFrom, monthTo time.Time) {
	now = now.UTC()
	dayFrom = now.Truncate(24 * time.Hour)
	monthFrom = time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	return dayFrom, dayFrom.AddDate(0, 0, 1), monthFrom, monthFrom.AddDate(0, 1, 0)
}

// tokensSince sums the tokens of a key's attempts started at or after
// from, on one model when modelID > 0.
func (s *usageReader) tokensSince(ctx context.Context, keyID, modelID int, from time.Time) (int, error) {
	q := s.db.Attempt.Query().Where(attempt.APIKeyID(keyID), attempt.StartedAtGTE(from))
	if modelID > 0 {
		q = q.Where(attempt.ModelID(modelID))
	}
	var rows []struct {
		Sum sql.NullInt64 `json:"sum"`
	}
	err := q.Aggregate(func(sel *sql.Selector) string {
		return sql.As(fmt.Sprintf("SUM(%s + %s)", sel.C(attempt.FieldPromptTokens), sel.C(attempt.FieldCompletionTokens)), "sum")
	}).Scan(ctx, &rows)
	if err != nil {
		return 0, dbErr(err, "attempt", 0)
	}
	if len(rows) == 0 {
		return 0, nil
	}
	return int(rows[0].Sum.Int64), nil
}

// windows reads a key's day and month usage (on one model when modelID >
// 0) against the given caps.
func (s *usageReader) windows(ctx context.Context, keyID, modelID int, perDay, perMonth *int) (day, month BudgetWindow, err error) {
	df, dt, mf, mt := periods(s.now())
	day = BudgetWindow{Period: "day", Limit: perDay, ResetsAt: dt}
	month = BudgetWindow{Period: "month", Limit: perMonth, ResetsAt: mt}
	if month.Used, err = s.tokensSince(ctx, keyID, modelID, mf); err != nil {
		return day, month, err
	}
	day.Used, err = s.tokensSince(ctx, keyID, modelID, df)
	return day, month, err
}

func (s *usageReader) usageOf(ctx context.Context, k *ent.APIKey) (*KeyUsage, error) {
	u := &KeyUsage{KeyID: k.ID, Name: k.Name, Weight: k.Weight, Models: []ModelUsage{}}
	var err error
	if u.Day, u.Month, err = s.windows(ctx, k.ID, 0, k.TokensPerDay, k.TokensPerMonth); err != nil {
		return nil, err
	}
	for _, b := range k.ModelBudgets {
		mu := ModelUsage{ModelID: b.ModelID}
		if mu.Day, mu.Month, err = s.windows(ctx, k.ID, b.ModelID, b.TokensPerDay, b.TokensPerMonth); err != nil {
			return nil, err
		}
		u.Models = append(u.Models, mu)
	}
	return u, nil
}
