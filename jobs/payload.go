package jobs

import (
	"encoding/json"
	"strconv"

	"github.com/llmsched/llm-scheduler/internal/domain"
)

// TypeRunTask is the asynq task type of an LLM task.
const TypeRunTask = "llm:run"

// Queue names, one per priority.
const (
	QueueHigh   = "high"
	QueueMedium = "medium"
	QueueLow    = "low"
)

// Queues lists the asynq queues, highest priority first.
func Queues() []string { return []string{QueueHigh, QueueMedium, QueueLow} }

// QueueFor names the asynq queue of a priority.
func QueueFor(priority int) string {
	switch domain.Priority(priority) {
	case domain.PriorityHigh:
		return QueueHigh
	case domain.PriorityLow:
		return QueueLow
	}
	return QueueMedium
}

// payload is what asynq carries; everything else is read from the database.
type payload struct {
	TaskID   int `json:"task_id"`
	ModelID  int `json:"model_id"`
	Priority int `json:"priority"`
	// GrantedAt is when the task's lease on ModelID was given or renewed
	// just before this message was sent (unix ms). Every message is sent
	// right after a grant; zero in messages from before the field existed.
	GrantedAt int64 `json:"granted_at,omitempty"`
}

func (p payload) encode() []byte {
	raw, _ := json.Marshal(p)
	return raw
}

// taskID is a task's asynq task id: its database id. Tasks are the only
// rows enqueued into asynq (webhooks have their own sender), so the
// per-table number is unique there; a new kind of job in asynq would need
// a prefix.
func taskID(id int) string { return strconv.Itoa(id) }
