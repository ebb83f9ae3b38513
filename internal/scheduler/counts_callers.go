package scheduler

import (
	"cmp"
	"context"
	"slices"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/ent/task"
	"github.com/llmsched/llm-scheduler/internal/domain"
)

// callerLoads returns the callers with running or pending tasks, busiest
// first (at most maxCallerStats), counted like the per-model loads (see
// counts.go).
func (s *taskCounts) callerLoads(ctx context.Context) ([]CallerStat, error) {
	v, err := s.callers.get(ctx, s, "caller loads", s.readCallerLoads)
	return slices.Clone(v), err
}

func (s *taskCounts) readCallerLoads(ctx context.Context) ([]CallerStat, error) {
	var rows []struct {
		Caller   string            `json:"caller"`
		APIKeyID *int              `json:"api_key_id"`
		Status   domain.TaskStatus `json:"status"`
		Count    int               `json:"count"`
		Max      int               `json:"max"`
	}
	err := s.db.Task.Query().Where(task.StatusIn(domain.StatusPending, domain.StatusRunning)).
		GroupBy(task.FieldCaller, task.FieldAPIKeyID, task.FieldStatus).
		Aggregate(ent.Count(), ent.As(ent.Max(task.FieldWeight), "max")).Scan(ctx, &rows)
	if err != nil {
		return nil, dbErr(err, "task", 0)
	}
	type key struct {
		caller string
		id     int
	}
	byKey := map[key]*CallerStat{}
	var out []*CallerStat
	running, weights := 0, 0
	for _, r := range rows {
		k := key{caller: r.Caller}
		if r.APIKeyID != nil {
			k.id = *r.APIKeyID
		}
		c := byKey[k]
		if c == nil {
			c = &CallerStat{Caller: r.Caller, APIKeyID: r.APIKeyID}
			byKey[k] = c
			out = append(out, c)
		}
		if r.Status == domain.StatusRunning {
			c.Running += r.Count
			running += r.Count
		} else {
			c.Queued += r.Count
		}
		c.Weight = max(c.Weight, r.Max, 1)
	}
	for _, c := range out {
		weights += c.Weight
	}
	res := make([]CallerStat, 0, len(out))
	for _, c := range out {
		if running > 0 {
			c.Share = float64(c.Running) / float64(running)
		}
		c.FairShare = float64(c.Weight) / float64(weights)
		res = append(res, *c)
	}
	slices.SortFunc(res, func(a, b CallerStat) int {
		return cmp.Or(cmp.Compare(b.Running, a.Running), cmp.Compare(b.Queued, a.Queued), cmp.Compare(a.Caller, b.Caller))
	})
	if len(res) > maxCallerStats {
		res = res[:maxCallerStats]
	}
	return res, nil
}
