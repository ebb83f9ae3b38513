package events

import (
	"encoding/json"
	"time"

	"github.com/llmsched/llm-scheduler/internal/domain"
)

// TaskEvent is one transition of one task.
type TaskEvent struct {
	TaskID   int               `json:"task_id"`
	ModelID  int               `json:"model_id"`
	Priority int               `json:"priority"`
	Type     domain.TaskType   `json:"type"`
	From     domain.TaskStatus `json:"from,omitempty"` // empty when the task was created
	To       domain.TaskStatus `json:"to"`
	Attempt  int               `json:"attempt"`
	Error    string            `json:"error,omitempty"`
	At       time.Time         `json:"at"`
}

// OutputChunk is a piece of a task's output as a streaming provider produced it.
type OutputChunk struct {
	TaskID  int    `json:"task_id"`
	Attempt int    `json:"attempt"`
	Seq     int    `json:"seq"`
	Text    string `json:"text"`
	// Done marks the end of an attempt's stream.
	Done bool `json:"done,omitempty"`
	// The fields below are set only for tasks of the OpenAI-compatible
	// front door (server/openai.go), which answers in the provider's own
	// wire format.
	//
	// Raw holds the provider's stream chunks (OpenAI chat.completion.chunk
	// objects) as it sent them; Text is their content.
	Raw []json.RawMessage `json:"raw,omitempty"`
	// Answer is the provider's whole answer as it sent it (a
	// chat.completion object), on the Done chunk of an attempt that
	// was not streamed.
	Answer json.RawMessage `json:"answer,omitempty"`
	// Status is the HTTP status of the provider error that ended the
	// attempt, on its Done chunk (0: none).
	Status int `json:"status,omitempty"`
}

// TaskFilter selects task events. Zero fields match everything.
type TaskFilter struct {
	TaskID     int
	ModelIDs   []int
	Statuses   []domain.TaskStatus
	Priorities []int
}

// Match reports whether e passes the filter.
func (f TaskFilter) Match(e TaskEvent) bool {
	if f.TaskID != 0 && e.TaskID != f.TaskID {
		return false
	}
	if len(f.ModelIDs) > 0 && !contains(f.ModelIDs, e.ModelID) {
		return false
	}
	if len(f.Statuses) > 0 && !contains(f.Statuses, e.To) {
		return false
	}
	if len(f.Priorities) > 0 && !contains(f.Priorities, e.Priority) {
		return false
	}
	return true
}

func contains[T comparable](s []T, v T) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
