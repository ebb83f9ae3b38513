package domain

import (
	"fmt"
	"io"
	"slices"
)

// TaskType says what a task asks of its model, and so how the request to the
// provider is built.
type TaskType string

const (
	TypeTextGeneration TaskType = "text-generation"
	TypeTranslation    TaskType = "translation"
	TypeSummarization  TaskType = "summarization"
	TypeEmbedding      TaskType = "embedding"
	TypeCustom         TaskType = "custom"
)

// TaskTypes lists every task type.
func TaskTypes() []TaskType {
	return []TaskType{TypeTextGeneration, TypeTranslation, TypeSummarization, TypeEmbedding, TypeCustom}
}

func (TaskType) Values() []string            { return stringsOf(TaskTypes()) }
func (t TaskType) Valid() bool               { return slices.Contains(TaskTypes(), t) }
func (t TaskType) MarshalGQL(w io.Writer)    { writeGQL(w, string(t)) }
func (t *TaskType) UnmarshalGQL(v any) error { return unmarshalGQL(v, t, TaskTypes(), "type") }

// ParseTaskType accepts "text-generation" or "TEXT_GENERATION".
func ParseTaskType(v string) (TaskType, error) { return parseEnum(v, TaskTypes(), "type") }

// ModelType says which provider speaks to a model.
type ModelType string

const (
	// ModelOpenAI is any OpenAI-compatible HTTP API.
	ModelOpenAI ModelType = "openai"
	// ModelLocal is a locally deployed open model served over the
	// OpenAI-compatible protocol at http://host:port/v1.
	ModelLocal ModelType = "local"
	// ModelCustom is a generic HTTP endpoint with a request template.
	ModelCustom ModelType = "custom"
	// ModelSimulator is the built-in simulator for demos, tests and benchmarks.
	ModelSimulator ModelType = "simulator"
)

// ModelTypes lists every model type.
func ModelTypes() []ModelType {
	return []ModelType{ModelOpenAI, ModelLocal, ModelCustom, ModelSimulator}
}

func (ModelType) Values() []string            { return stringsOf(ModelTypes()) }
func (t ModelType) Valid() bool               { return slices.Contains(ModelTypes(), t) }
func (t ModelType) MarshalGQL(w io.Writer)    { writeGQL(w, string(t)) }
func (t *ModelType) UnmarshalGQL(v any) error { return unmarshalGQL(v, t, ModelTypes(), "type") }

// ParseModelType accepts "openai" or "OPENAI".
func ParseModelType(v string) (ModelType, error) { return parseEnum(v, ModelTypes(), "type") }

// ModelStatus says whether a model takes work.
type ModelStatus string

const (
	ModelOnline  ModelStatus = "online"
	ModelOffline ModelStatus = "offline"
)

// ModelStatuses lists every model status.
func ModelStatuses() []ModelStatus { return []ModelStatus{ModelOnline, ModelOffline} }

func (ModelStatus) Values() []string            { return stringsOf(ModelStatuses()) }
func (s ModelStatus) Valid() bool               { return slices.Contains(ModelStatuses(), s) }
func (s ModelStatus) MarshalGQL(w io.Writer)    { writeGQL(w, string(s)) }
func (s *ModelStatus) UnmarshalGQL(v any) error { return unmarshalGQL(v, s, ModelStatuses(), "status") }

// ParseModelStatus accepts "online" or "ONLINE".
func ParseModelStatus(v string) (ModelStatus, error) {
	return parseEnum(v, ModelStatuses(), "status")
}

// Priority orders tasks: higher runs first.
type Priority int

const (
	PriorityLow    Priority = 1
	PriorityMedium Priority = 2
	PriorityHigh   Priority = 3
)

// Valid reports whether p is 1, 2 or 3.
func (p Priority) Valid() bool { return p >= PriorityLow && p <= PriorityHigh }

// String names the priority as its asynq queue.
func (p Priority) String() string {
	switch p {
	case PriorityHigh:
		return "high"
	case PriorityMedium:
		return "medium"
	case PriorityLow:
		return "low"
	}
	return fmt.Sprintf("priority(%d)", int(p))
}

// AttemptStatus is the outcome of one try of a task.
type AttemptStatus string

const (
	AttemptRunning   AttemptStatus = "running"
	AttemptSucceeded AttemptStatus = "succeeded"
	AttemptFailed    AttemptStatus = "failed"
	// AttemptLost: its worker vanished (crash, kill) before it reported.
	AttemptLost AttemptStatus = "lost"
	// AttemptCancelled: a user cancelled the task while this attempt ran.
	AttemptCancelled AttemptStatus = "cancelled"
)

// AttemptStatuses lists every attempt status.
func AttemptStatuses() []AttemptStatus {
	return []AttemptStatus{AttemptRunning, AttemptSucceeded, AttemptFailed, AttemptLost, AttemptCancelled}
}

func (AttemptStatus) Values() []string         { return stringsOf(AttemptStatuses()) }
func (s AttemptStatus) MarshalGQL(w io.Writer) { writeGQL(w, string(s)) }
func (s *AttemptStatus) UnmarshalGQL(v any) error {
	return unmarshalGQL(v, s, AttemptStatuses(), "status")
}

// Role is what an API key may do.
type Role string

const (
	RoleAdmin     Role = "admin"
	RoleOperator  Role = "operator"
	RoleSubmitter Role = "submitter"
	RoleViewer    Role = "viewer"
)

// Roles lists every role, most powerful first.
func Roles() []Role { return []Role{RoleAdmin, RoleOperator, RoleSubmitter, RoleViewer} }

func (Role) Values() []string            { return stringsOf(Roles()) }
func (r Role) Valid() bool               { return slices.Contains(Roles(), r) }
func (r Role) MarshalGQL(w io.Writer)    { writeGQL(w, string(r)) }
func (r *Role) UnmarshalGQL(v any) error { return unmarshalGQL(v, r, Roles(), "role") }

// ParseRole accepts "admin" or "ADMIN".
func ParseRole(v string) (Role, error) { return parseEnum(v, Roles(), "role") }

// ModelBudget limits an API key's tokens on one model (nil: no limit).
type ModelBudget struct {
	ModelID        int  `json:"model_id"`
	TokensPerDay   *int `json:"tokens_per_day,omitempty"`
	TokensPerMonth *int `json:"tokens_per_month,omitempty"`
}

// AnonymousCaller is the caller of a task submitted without an API key and
// without a caller label.
const AnonymousCaller = "anonymous"

// WebhookStatus is where a completion webhook delivery stands.
type WebhookStatus string

const (
	// WebhookPending: due at its next_attempt_at (first try or a retry).
	WebhookPending WebhookStatus = "pending"
	// WebhookDelivered: the receiver answered 2xx.
	WebhookDelivered WebhookStatus = "delivered"
	// WebhookFailed: no 2xx before webhooks.max_age ran out.
	WebhookFailed WebhookStatus = "failed"
)

// WebhookStatuses lists every delivery status.
func WebhookStatuses() []WebhookStatus {
	return []WebhookStatus{WebhookPending, WebhookDelivered, WebhookFailed}
}

func (WebhookStatus) Values() []string         { return stringsOf(WebhookStatuses()) }
func (s WebhookStatus) MarshalGQL(w io.Writer) { writeGQL(w, string(s)) }
func (s *WebhookStatus) UnmarshalGQL(v any) error {
	return unmarshalGQL(v, s, WebhookStatuses(), "status")
}
