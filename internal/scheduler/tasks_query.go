package scheduler

import (
	"context"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/ent/task"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/events"
)

// TaskFilter selects tasks in ListTasks.
type TaskFilter struct {
	Status   string
	ModelID  int
	Type     string
	Priority int
	// APIKeyID limits the list to one submitter's tasks.
	APIKeyID *int
	// Caller limits the list to one caller's tasks.
	Caller string
}

// Page is a 1-based page of a list.
type Page struct {
	Page     int
	PageSize int
}

// TaskPage is one page of tasks.
type TaskPage struct {
	Tasks    []*ent.Task
	Total    int
	Page     int
	PageSize int
}

// MaxPageSize caps page_size.
const MaxPageSize = 100

// MaxPage caps page: its offset, (page-1)*page_size, must fit the
// database's OFFSET (a page past every row is empty anyway).
const MaxPage = 10_000_000

func (p Page) validate() error {
	if p.Page < 1 || p.Page > MaxPage {
		return Invalid("page", "must be between 1 and %d, got %d", MaxPage, p.Page)
	}
	if p.PageSize < 1 || p.PageSize > MaxPageSize {
		return Invalid("page_size", "must be between 1 and %d, got %d", MaxPageSize, p.PageSize)
	}
	return nil
}

// ListTasks returns a page of tasks, newest first.
func (s *Tasks) ListTasks(ctx context.Context, f TaskFilter, p Page) (TaskPage, error) {
	if err := p.validate(); err != nil {
		return TaskPage{}, err
	}
	q := s.db.Task.Query()
	if f.Status != "" {
		st, err := domain.ParseTaskStatus(f.Status)
		if err != nil {
			return TaskPage{}, Invalid("status", "must be one of %s, got %q", joinTypes(domain.TaskStatuses()), f.Status)
		}
		q = q.Where(task.StatusEQ(st))
	}
	if f.Type != "" {
		t, err := domain.ParseTaskType(f.Type)
		if err != nil {
			return TaskPage{}, Invalid("type", "must be one of %s, got %q", joinTypes(domain.TaskTypes()), f.Type)
		}
		q = q.Where(task.TypeEQ(t))
	}
	if f.ModelID < 0 {
		return TaskPage{}, Invalid("model_id", "must be a positive integer")
	}
	if f.ModelID > 0 {
		q = q.Where(task.ModelID(f.ModelID))
	}
	if f.Priority != 0 {
		if !domain.Priority(f.Priority).Valid() {
			return TaskPage{}, Invalid("priority", "must be 1, 2 or 3, got %d", f.Priority)
		}
		q = q.Where(task.Priority(f.Priority))
	}
	if f.APIKeyID != nil {
		q = q.Where(task.APIKeyID(*f.APIKeyID))
	}
	if f.Caller != "" {
		q = q.Where(task.Caller(f.Caller))
	}
	total, err := s.listTotal(ctx, f, q)
	if err != nil {
		return TaskPage{}, err
	}
	ts, err := q.Order(ent.Desc(task.FieldCreatedAt), ent.Desc(task.FieldID)).
		Offset((p.Page - 1) * p.PageSize).Limit(p.PageSize).All(ctx)
	if err != nil {
		return TaskPage{}, dbErr(err, "task", 0)
	}
	return TaskPage{Tasks: ts, Total: total, Page: p.Page, PageSize: p.PageSize}, nil
}

// listTotal counts the tasks a list filter matches. Filtered by status
// alone (or not at all) the count comes from the task counts by status
// (counts.go), which a big backlog makes costly to read every page.
func (s *Tasks) listTotal(ctx context.Context, f TaskFilter, q *ent.TaskQuery) (int, error) {
	if f.Type == "" && f.ModelID == 0 && f.Priority == 0 && f.APIKeyID == nil && f.Caller == "" {
		byStatus, err := s.counts.statusCounts(ctx)
		if err != nil {
			return 0, err
		}
		if f.Status != "" {
			return byStatus[domain.TaskStatus(f.Status)], nil
		}
		total := 0
		for _, n := range byStatus {
			total += n
		}
		return total, nil
	}
	n, err := q.Clone().Count(ctx)
	if err != nil {
		return 0, dbErr(err, "task", 0)
	}
	return n, nil
}

// GetTask returns one task.
func (s *Tasks) GetTask(ctx context.Context, id int) (*ent.Task, error) {
	return s.m.task(ctx, id)
}

// Attempts returns a task's attempts, oldest first.
func (s *Tasks) Attempts(ctx context.Context, taskID int) ([]*ent.Attempt, error) {
	as, err := s.db.Task.Query().Where(task.ID(taskID)).QueryAttemptHistory().
		Order(ent.Asc("number")).All(ctx)
	return as, dbErr(err, "task", taskID)
}

// ModelOf returns the model of a task, deleted or not.
func (s *Tasks) ModelOf(ctx context.Context, t *ent.Task) (*ent.Model, error) {
	m, err := s.models.get(ctx, s.db, t.ModelID)
	return m, dbErr(err, "model", t.ModelID)
}

// RetriesLeft is how many automatic retries a task has before it fails.
func RetriesLeft(t *ent.Task) int {
	used := max(t.Attempts-t.AttemptBase-1, 0)
	return max(t.MaxRetries-used, 0)
}

// OutputOf returns each task's output as a reader should see it, by task
// id: the stored output, or for a running task the text its attempt has
// streamed so far (a task's output is stored only when it completes).
//
// When Redis cannot be read, running tasks keep their stored (empty)
// output and the error is logged: a task read does not fail over a
// preview.
func (s *Tasks) OutputOf(ctx context.Context, ts ...*ent.Task) map[int]string {
	out := make(map[int]string, len(ts))
	var refs []events.OutputRef
	for _, t := range ts {
		out[t.ID] = t.Output
		if t.Status == domain.StatusRunning && t.Output == "" {
			refs = append(refs, events.OutputRef{TaskID: t.ID, Attempt: t.Attempts})
		}
	}
	if s.output == nil || len(refs) == 0 {
		return out
	}
	sofar, err := s.output.OutputsSoFar(ctx, refs)
	if err != nil {
		s.log.Warn("running tasks are shown without their output so far", "tasks", len(refs), "err", err)
		return out
	}
	for ref, text := range sofar {
		out[ref.TaskID] = text
	}
	return out
}
