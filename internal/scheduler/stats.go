package scheduler

import (
	"context"
	"time"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/ent/model"
	"github.com/llmsched/llm-scheduler/ent/task"
	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/internal/domain"
)

// Stats is what the dashboard, the health check and the reports read:
// counts, loads, costs and budget usage. It only reads.
type Stats struct {
	db      *ent.Client
	disp    Dispatcher
	cfg     *config.Config
	now     func() time.Time
	dbPing  func(ctx context.Context) error
	workers func(ctx context.Context) (int, error)
	counts  *taskCounts
	usage   usageReader
}

// DashboardStats is the overview of the whole system.
type DashboardStats struct {
	TotalTasks int                       `json:"total_tasks"`
	ByStatus   map[domain.TaskStatus]int `json:"by_status"`
	Pending    int                       `json:"pending_tasks"`
	Running    int                       `json:"running_tasks"`
	Completed  int                       `json:"completed_tasks"`
	Failed     int                       `json:"failed_tasks"`
	Cancelled  int                       `json:"cancelled_tasks"`
	// SuccessRate is completed / (completed + failed), 0..1.
	SuccessRate float64 `json:"success_rate"`
	// Throughput is tasks completed in the last minute.
	ThroughputPerMinute int `json:"throughput_per_minute"`
	// QueueDepth is the number of pending tasks.
	QueueDepth   int `json:"queue_depth"`
	TotalModels  int `json:"total_models"`
	OnlineModels int `json:"online_models"`
	// AvgDurationMS is the mean run time of tasks finished in the last hour.
	AvgDurationMS float64     `json:"avg_duration_ms"`
	PerModel      []ModelStat `json:"per_model"`
	// PerCaller is the load of each caller with open tasks, busiest first.
	PerCaller   []CallerStat `json:"per_caller"`
	GeneratedAt time.Time    `json:"generated_at"`
}

// ModelStat is one model's load.
type ModelStat struct {
	ModelID    int    `json:"model_id"`
	Name       string `json:"name"`
	Status     string `json:"status"`
	MaxWorkers int    `json:"max_workers"`
	Running    int    `json:"running"`
	Queued     int    `json:"queued"`
}

// DashboardStats computes the overview.
func (s *Stats) DashboardStats(ctx context.Context) (*DashboardStats, error) {
	byStatus, err := s.StatusCounts(ctx)
	if err != nil {
		return nil, err
	}
	st := &DashboardStats{ByStatus: byStatus, GeneratedAt: s.now().UTC()}
	for _, n := range byStatus {
		st.TotalTasks += n
	}
	st.Pending, st.Running = st.ByStatus[domain.StatusPending], st.ByStatus[domain.StatusRunning]
	st.Completed, st.Failed = st.ByStatus[domain.StatusCompleted], st.ByStatus[domain.StatusFailed]
	st.Cancelled = st.ByStatus[domain.StatusCancelled]
	st.QueueDepth = st.Pending
	if done := st.Completed + st.Failed; done > 0 {
		st.SuccessRate = float64(st.Completed) / float64(done)
	}
	now := s.now()
	n, err := s.db.Task.Query().Where(task.StatusEQ(domain.StatusCompleted), task.FinishedAtGTE(now.Add(-time.Minute))).Count(ctx)
	if err != nil {
		return nil, dbErr(err, "task", 0)
	}
	st.ThroughputPerMinute = n
	recent, err := s.db.Task.Query().
		Where(task.StatusEQ(domain.StatusCompleted), task.FinishedAtGTE(now.Add(-time.Hour)), task.StartedAtNotNil()).
		Order(ent.Desc(task.FieldFinishedAt)).Limit(500).
		Select(task.FieldStartedAt, task.FieldFinishedAt).All(ctx)
	if err != nil {
		return nil, dbErr(err, "task", 0)
	}
	if len(recent) > 0 {
		var sum time.Duration
		for _, t := range recent {
			sum += t.FinishedAt.Sub(*t.StartedAt)
		}
		st.AvgDurationMS = float64(sum.Milliseconds()) / float64(len(recent))
	}
	models, err := s.db.Model.Query().Where(model.DeletedAtIsNil()).Order(ent.Asc(model.FieldID)).All(ctx)
	if err != nil {
		return nil, dbErr(err, "model", 0)
	}
	loads, err := s.counts.modelLoads(ctx)
	if err != nil {
		return nil, err
	}
	st.TotalModels = len(models)
	st.PerModel = make([]ModelStat, 0, len(models))
	for _, m := range models {
		if m.Status == domain.ModelOnline {
			st.OnlineModels++
		}
		l := loads[m.ID]
		st.PerModel = append(st.PerModel, ModelStat{
			ModelID: m.ID, Name: m.Name, Status: string(m.Status), MaxWorkers: m.MaxWorkers,
			Running: l.Running, Queued: l.Queued,
		})
	}
	if st.PerCaller, err = s.CallerLoads(ctx); err != nil {
		return nil, err
	}
	return st, nil
}

// DayStats counts the tasks created on one day (UTC), by their status now.
type DayStats struct {
	Date      string `json:"date"`
	Total     int    `json:"total"`
	Pending   int    `json:"pending"`
	Running   int    `json:"running"`
	Completed int    `json:"completed"`
	Failed    int    `json:"failed"`
	Cancelled int    `json:"cancelled"`
}

// TaskStatsByDate returns one entry per day for the last days days, oldest
// first, today included.
func (s *Stats) TaskStatsByDate(ctx context.Context, days int) ([]DayStats, error) {
	if days < 1 || days > 90 {
		return nil, Invalid("days", "must be between 1 and 90, got %d", days)
	}
	today := s.now().UTC().Truncate(24 * time.Hour)
	out := make([]DayStats, 0, days)
	for i := days - 1; i >= 0; i-- {
		from := today.AddDate(0, 0, -i)
		var rows []struct {
			Status domain.TaskStatus `json:"status"`
			Count  int               `json:"count"`
		}
		err := s.db.Task.Query().Where(task.CreatedAtGTE(from), task.CreatedAtLT(from.AddDate(0, 0, 1))).
			GroupBy(task.FieldStatus).Aggregate(ent.Count()).Scan(ctx, &rows)
		if err != nil {
			return nil, dbErr(err, "task", 0)
		}
		d := DayStats{Date: from.Format("2006-01-02")}
		for _, r := range rows {
			d.Total += r.Count
			switch r.Status {
			case domain.StatusPending:
				d.Pending = r.Count
			case domain.StatusRunning:
				d.Running = r.Count
			case domain.StatusCompleted:
				d.Completed = r.Count
			case domain.StatusFailed:
				d.Failed = r.Count
			case domain.StatusCancelled:
				d.Cancelled = r.Count
			}
		}
		out = append(out, d)
	}
	return out, nil
}

// Health is the state of the dependencies.
type Health struct {
	Status   string     `json:"status"` // ok or degraded
	Database Dependency `json:"database"`
	Redis    Dependency `json:"redis"`
	Workers  Dependency `json:"workers"`
	Mode     string     `json:"mode"` // embedded or external
	Version  string     `json:"version"`
	Time     time.Time  `json:"time"`
}

// Dependency is one dependency's state.
type Dependency struct {
	OK        bool    `json:"ok"`
	LatencyMS float64 `json:"latency_ms"`
	Error     string  `json:"error,omitempty"`
	// Count is the number of live worker processes (workers only).
	Count int `json:"count,omitempty"`
}

// Health checks the database and Redis; OK only when both answer.
func (s *Stats) Health(ctx context.Context) Health {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	check := func(f func(context.Context) error) Dependency {
		start := time.Now()
		err := f(ctx)
		d := Dependency{OK: err == nil, LatencyMS: float64(time.Since(start).Microseconds()) / 1000}
		if err != nil {
			d.Error = err.Error()
		}
		return d
	}
	h := Health{Status: "ok", Version: s.cfg.App.Version, Time: s.now().UTC(), Mode: "external"}
	if s.cfg.Embedded() {
		h.Mode = "embedded"
	}
	h.Database = check(s.dbPing)
	h.Redis = check(s.disp.Ping)
	if s.workers != nil {
		n, err := s.workers(ctx)
		h.Workers = Dependency{OK: err == nil && n > 0, Count: n}
		if err != nil {
			h.Workers.Error = err.Error()
		} else if n == 0 {
			h.Workers.Error = "no worker process is running"
		}
	}
	if !h.Database.OK || !h.Redis.OK {
		h.Status = "unavailable"
	} else if s.workers != nil && !h.Workers.OK {
		h.Status = "degraded"
	}
	return h
}

// StatusCounts counts tasks by status (every status present, 0 if none),
// cached when costly (counts.go). The map is the caller's own.
func (s *Stats) StatusCounts(ctx context.Context) (map[domain.TaskStatus]int, error) {
	return s.counts.statusCounts(ctx)
}

// CallerLoads returns the callers with running or pending tasks, busiest
// first (at most maxCallerStats), counted like the per-model loads
// (counts.go).
func (s *Stats) CallerLoads(ctx context.Context) ([]CallerStat, error) {
	return s.counts.callerLoads(ctx)
}

// KeyUsage reads a key's usage against its budgets.
func (s *Stats) KeyUsage(ctx context.Context, keyID int) (*KeyUsage, error) {
	k, err := s.db.APIKey.Get(ctx, keyID)
	if err != nil {
		return nil, dbErr(err, "api key", keyID)
	}
	return s.usage.usageOf(ctx, k)
}
