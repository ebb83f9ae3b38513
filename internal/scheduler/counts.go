package scheduler

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/ent/task"
	"github.com/llmsched/llm-scheduler/internal/domain"
)

// Counts over the whole tasks table (tasks by status for the dashboard and
// the task list's total, running and queued tasks per model) cost time in
// proportion to the table: with a million pending tasks a GROUP BY status
// took about a second, and every dashboard refresh and task-list page paid
// it. So a count that took costlyCount or more is reused for countReuse
// times as long as it took, and past that answered at once while one read
// in the background refreshes it: the numbers lag by about ten times their
// own cost, and the database spends at most a tenth of its time on them
// however many dashboards watch. A cheap count (a small table) is read
// fresh every time, as before.
const (
	costlyCount = 100 * time.Millisecond
	countReuse  = 10
	// countStale bounds how old a count may be and still answer at once
	// (for counts costing under countStale / (3 * countReuse)); older, the
	// caller waits for a fresh read (after an idle spell, say).
	countStale = 30 * time.Second
)

// countCache is one cached count.
type countCache[T any] struct {
	mu         sync.Mutex
	val        T
	at         time.Time
	took       time.Duration
	have       bool
	refreshing bool
}

// get returns the count, from the cache when it is costly and recent
// enough (see costlyCount).
func (c *countCache[T]) get(ctx context.Context, s *taskCounts, what string, load func(context.Context) (T, error)) (T, error) {
	c.mu.Lock()
	if c.have && c.took >= costlyCount {
		age := time.Since(c.at)
		if age < max(countStale, 3*countReuse*c.took) {
			if age >= countReuse*c.took && !c.refreshing {
				c.refreshing = s.bg.spawn(func() {
					if _, err := c.read(s.bg.ctx, load); err != nil && s.bg.ctx.Err() == nil {
						s.log.Warn("refresh "+what, "err", err)
					}
				})
			}
			v := c.val
			c.mu.Unlock()
			return v, nil
		}
	}
	c.mu.Unlock()
	return c.read(ctx, load)
}

// read runs the count and caches it with its cost.
func (c *countCache[T]) read(ctx context.Context, load func(context.Context) (T, error)) (T, error) {
	start := time.Now()
	v, err := load(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refreshing = false
	if err != nil {
		return v, err
	}
	c.val, c.at, c.took, c.have = v, time.Now(), time.Since(start), true
	return v, nil
}

// taskCounts are the cached counts over the whole tasks table, shared by
// the parts that show them (Tasks, ModelAdmin, Stats).
type taskCounts struct {
	db       *ent.Client
	bg       *background
	log      *slog.Logger
	byStatus countCache[map[domain.TaskStatus]int]
	loads    countCache[map[int]ModelLoad]
	callers  countCache[[]CallerStat]
}

func newTaskCounts(db *ent.Client, bg *background, log *slog.Logger) *taskCounts {
	return &taskCounts{db: db, bg: bg, log: log}
}

// statusCounts counts tasks by status (every status present, 0 if none),
// cached when costly (see above). The map is the caller's own.
func (s *taskCounts) statusCounts(ctx context.Context) (map[domain.TaskStatus]int, error) {
	m, err := s.byStatus.get(ctx, s, "task counts by status", func(ctx context.Context) (map[domain.TaskStatus]int, error) {
		var rows []struct {
			Status domain.TaskStatus `json:"status"`
			Count  int               `json:"count"`
		}
		if err := s.db.Task.Query().GroupBy(task.FieldStatus).Aggregate(ent.Count()).Scan(ctx, &rows); err != nil {
			return nil, dbErr(err, "task", 0)
		}
		out := make(map[domain.TaskStatus]int, len(domain.TaskStatuses()))
		for _, status := range domain.TaskStatuses() {
			out[status] = 0
		}
		for _, r := range rows {
			out[r.Status] = r.Count
		}
		return out, nil
	})
	if err != nil {
		return nil, err
	}
	// Callers may change what they get.
	out := make(map[domain.TaskStatus]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out, nil
}

// modelLoads returns running and queued counts of every model with work
// (cached when costly, see above; callers must not change the map).
func (s *taskCounts) modelLoads(ctx context.Context) (map[int]ModelLoad, error) {
	return s.loads.get(ctx, s, "model loads", s.readModelLoads)
}

func (s *taskCounts) readModelLoads(ctx context.Context) (map[int]ModelLoad, error) {
	var rows []struct {
		ModelID int               `json:"model_id"`
		Status  domain.TaskStatus `json:"status"`
		Count   int               `json:"count"`
	}
	err := s.db.Task.Query().Where(task.StatusIn(domain.StatusPending, domain.StatusRunning)).
		GroupBy(task.FieldModelID, task.FieldStatus).Aggregate(ent.Count()).Scan(ctx, &rows)
	if err != nil {
		return nil, dbErr(err, "task", 0)
	}
	out := map[int]ModelLoad{}
	for _, r := range rows {
		l := out[r.ModelID]
		if r.Status == domain.StatusRunning {
			l.Running += r.Count
		} else {
			l.Queued += r.Count
		}
		out[r.ModelID] = l
	}
	return out, nil
}
