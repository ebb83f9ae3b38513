package scheduler

import (
	"context"
	"sort"
	"strconv"
	"time"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/ent/attempt"
	"github.com/llmsched/llm-scheduler/ent/model"
)

// CostLine is the cost of one model's or one caller's attempts.
type CostLine struct {
	// ModelID is set on lines by model; Name is the model's name or the
	// caller.
	ModelID          int     `json:"model_id,omitempty"`
	Name             string  `json:"name"`
	Cost             float64 `json:"cost"`
	PromptTokens     int     `json:"prompt_tokens"`
	CompletionTokens int     `json:"completion_tokens"`
	Attempts         int     `json:"attempts"`
	// Estimated: some of the cost rests on estimated token counts.
	Estimated bool `json:"estimated"`
}

// CostDay is one UTC day's cost, by model and by caller.
type CostDay struct {
	Date      string     `json:"date"`
	Cost      float64    `json:"cost"`
	Estimated bool       `json:"estimated"`
	ByModel   []CostLine `json:"by_model"`
	ByCaller  []CostLine `json:"by_caller"`
}

// CostReport is the cost of the attempts started in the last Days days,
// per day and in total, by model and by caller.
type CostReport struct {
	Days      []CostDay  `json:"days"`
	Cost      float64    `json:"cost"`
	Estimated bool       `json:"estimated"`
	ByModel   []CostLine `json:"by_model"`
	ByCaller  []CostLine `json:"by_caller"`
}

// costRow is one group of attempts: a model, a caller, whether estimated.
type costRow struct {
	ModelID    int     `json:"model_id"`
	Caller     string  `json:"caller"`
	Estimated  bool    `json:"cost_estimated"`
	Cost       float64 `json:"cost"`
	Prompt     int     `json:"prompt"`
	Completion int     `json:"completion"`
	Count      int     `json:"count"`
}

// costLines sums rows into lines by key, sorted by cost, highest first.
type costLines struct {
	m     map[string]*CostLine
	order []string
}

func (c *costLines) add(key string, line CostLine, r costRow) {
	if c.m == nil {
		c.m = map[string]*CostLine{}
	}
	l, ok := c.m[key]
	if !ok {
		l = &line
		c.m[key] = l
		c.order = append(c.order, key)
	}
	l.Cost += r.Cost
	l.PromptTokens += r.Prompt
	l.CompletionTokens += r.Completion
	l.Attempts += r.Count
	l.Estimated = l.Estimated || r.Estimated
}

func (c *costLines) lines() []CostLine {
	out := make([]CostLine, 0, len(c.order))
	for _, k := range c.order {
		out = append(out, *c.m[k])
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Cost > out[j].Cost })
	return out
}

// CostReport sums attempt costs by day (UTC, by start), model and caller
// for the last days days, oldest first, today included. Totals equal the
// sum of the attempts, failed ones included. With owner set (a submitter)
// only that key's attempts count.
func (s *Stats) CostReport(ctx context.Context, days int, owner *int) (*CostReport, error) {
	if days < 1 || days > 90 {
		return nil, Invalid("days", "must be between 1 and 90, got %d", days)
	}
	names := map[int]string{}
	ms, err := s.db.Model.Query().Select(model.FieldID, model.FieldName).All(ctx)
	if err != nil {
		return nil, dbErr(err, "model", 0)
	}
	for _, m := range ms {
		names[m.ID] = m.Name
	}
	today := s.now().UTC().Truncate(24 * time.Hour)
	rep := &CostReport{Days: make([]CostDay, 0, days)}
	var allModels, allCallers costLines
	for i := days - 1; i >= 0; i-- {
		from := today.AddDate(0, 0, -i)
		var rows []costRow
		q := s.db.Attempt.Query().Where(attempt.StartedAtGTE(from), attempt.StartedAtLT(from.AddDate(0, 0, 1)))
		if owner != nil {
			q = q.Where(attempt.APIKeyID(*owner))
		}
		err := q.GroupBy(attempt.FieldModelID, attempt.FieldCaller, attempt.FieldCostEstimated).
			Aggregate(ent.As(ent.Sum(attempt.FieldCost), "cost"), ent.As(ent.Sum(attempt.FieldPromptTokens), "prompt"),
				ent.As(ent.Sum(attempt.FieldCompletionTokens), "completion"), ent.Count()).
			Scan(ctx, &rows)
		if err != nil {
			return nil, dbErr(err, "attempt", 0)
		}
		d := CostDay{Date: from.Format("2006-01-02")}
		var byModel, byCaller costLines
		for _, r := range rows {
			d.Cost += r.Cost
			d.Estimated = d.Estimated || r.Estimated
			mk := strconv.Itoa(r.ModelID)
			byModel.add(mk, CostLine{ModelID: r.ModelID, Name: names[r.ModelID]}, r)
			byCaller.add(r.Caller, CostLine{Name: r.Caller}, r)
			allModels.add(mk, CostLine{ModelID: r.ModelID, Name: names[r.ModelID]}, r)
			allCallers.add(r.Caller, CostLine{Name: r.Caller}, r)
		}
		d.ByModel, d.ByCaller = byModel.lines(), byCaller.lines()
		rep.Cost += d.Cost
		rep.Estimated = rep.Estimated || d.Estimated
		rep.Days = append(rep.Days, d)
	}
	rep.ByModel, rep.ByCaller = allModels.lines(), allCallers.lines()
	return rep, nil
}
