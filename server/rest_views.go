package server

import (
	"time"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/scheduler"
)

// taskView is a task as the REST API shows it.
type taskView struct {
	ID               int               `json:"id"`
	ModelID          int               `json:"model_id"`
	Type             domain.TaskType   `json:"type"`
	Input            string            `json:"input"`
	Params           map[string]any    `json:"params,omitempty"`
	Priority         int               `json:"priority"`
	Status           domain.TaskStatus `json:"status"`
	Output           string            `json:"output"`
	Embedding        []float64         `json:"embedding,omitempty"`
	Error            string            `json:"error,omitempty"`
	Attempts         int               `json:"attempts"`
	MaxRetries       int               `json:"max_retries"`
	TimeoutSeconds   *int              `json:"timeout_seconds,omitempty"`
	PromptTokens     int               `json:"prompt_tokens"`
	CompletionTokens int               `json:"completion_tokens"`
	TotalTokens      int               `json:"total_tokens"`
	// Caller is who submitted the task; APIKeyID the key, when auth is on.
	Caller   string `json:"caller"`
	APIKeyID *int   `json:"api_key_id,omitempty"`
	// Cost totals every attempt's cost; CostEstimated: some of it rests on
	// estimated token counts.
	Cost          float64 `json:"cost"`
	CostEstimated bool    `json:"cost_estimated"`
	// TokenSource is "reported" (the provider's usage) or "estimated"
	// (the provider sent none); absent until the task completes.
	TokenSource   string     `json:"token_source,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
	StartedAt     *time.Time `json:"started_at"`
	FinishedAt    *time.Time `json:"finished_at"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	// RunAt is when the task was scheduled to run (absent: at once).
	RunAt *time.Time `json:"run_at,omitempty"`
	// Pending explains why a pending task waits (detail view only).
	PendingReason string `json:"pending_reason,omitempty"`
	PendingDetail string `json:"pending_detail,omitempty"`
	QueuePosition int    `json:"queue_position,omitempty"`
	// AttemptHistory lists every try (detail view only).
	AttemptHistory []attemptView `json:"attempt_history,omitempty"`
	// CallbackURL receives the task's completion webhook.
	CallbackURL *string `json:"callback_url,omitempty"`
	// WebhookDeliveries lists the webhooks owed and their tries (detail
	// view of a task with a callback_url only).
	WebhookDeliveries []deliveryView `json:"webhook_deliveries,omitempty"`
}

type attemptView struct {
	Number    int                  `json:"number"`
	ModelID   int                  `json:"model_id"`
	Status    domain.AttemptStatus `json:"status"`
	Error     string               `json:"error,omitempty"`
	ErrorKind string               `json:"error_kind,omitempty"`
	Output    string               `json:"partial_output,omitempty"`
	Worker    string               `json:"worker,omitempty"`
	// Tokens used by this try, as the provider reported them.
	PromptTokens     int     `json:"prompt_tokens"`
	CompletionTokens int     `json:"completion_tokens"`
	Cost             float64 `json:"cost"`
	CostEstimated    bool    `json:"cost_estimated"`
	TokenSource      string  `json:"token_source,omitempty"`
	// FinishReason is why the model stopped ("stop", "length", "unknown").
	FinishReason string     `json:"finish_reason,omitempty"`
	StartedAt    time.Time  `json:"started_at"`
	FinishedAt   *time.Time `json:"finished_at"`
	DurationMS   *int64     `json:"duration_ms,omitempty"`
}

func newTaskView(t *ent.Task) taskView {
	v := taskView{
		ID: t.ID, ModelID: t.ModelID, Type: t.Type, Input: t.Prompt, Params: t.Params,
		Priority: t.Priority, Status: t.Status, Output: t.Output, Embedding: t.Embedding, Error: t.Error,
		Attempts: t.Attempts, MaxRetries: t.MaxRetries, TimeoutSeconds: t.TimeoutSeconds,
		PromptTokens: t.PromptTokens, CompletionTokens: t.CompletionTokens, TotalTokens: t.TotalTokens,
		Caller: t.Caller, APIKeyID: t.APIKeyID, Cost: t.Cost, CostEstimated: t.CostEstimated, TokenSource: t.TokenSource,
		CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt, StartedAt: t.StartedAt, FinishedAt: t.FinishedAt,
		NextAttemptAt: t.NextAttemptAt, RunAt: t.RunAt, CallbackURL: t.CallbackURL,
	}
	if t.Scheduled && t.Status == domain.StatusPending {
		// Known without asking Redis, so every view says it.
		v.PendingReason = string(scheduler.ReasonScheduled)
	}
	return v
}

func newAttemptView(a *ent.Attempt) attemptView {
	v := attemptView{
		Number: a.Number, ModelID: a.ModelID, Status: a.Status, Error: a.Error, ErrorKind: a.ErrorKind,
		Output: a.Output, Worker: a.Worker, StartedAt: a.StartedAt, FinishedAt: a.FinishedAt,
		PromptTokens: a.PromptTokens, CompletionTokens: a.CompletionTokens,
		Cost: a.Cost, CostEstimated: a.CostEstimated, TokenSource: a.TokenSource, FinishReason: a.FinishReason,
	}
	if a.FinishedAt != nil {
		d := a.FinishedAt.Sub(a.StartedAt).Milliseconds()
		v.DurationMS = &d
	}
	return v
}

// modelView is a model as the REST API shows it: secrets masked.
type modelView struct {
	ID          int                `json:"id"`
	Name        string             `json:"name"`
	Type        domain.ModelType   `json:"type"`
	Config      map[string]any     `json:"config"`
	Status      domain.ModelStatus `json:"status"`
	MaxWorkers  int                `json:"max_workers"`
	Description string             `json:"description,omitempty"`
	Fallbacks   []int              `json:"fallbacks,omitempty"`
	// Prices per million input and output tokens (absent: free).
	InputPrice  *float64  `json:"input_price,omitempty"`
	OutputPrice *float64  `json:"output_price,omitempty"`
	Running     int       `json:"running"`
	Queued      int       `json:"queued"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func newModelView(m *ent.Model, config map[string]any, load scheduler.ModelLoad) modelView {
	return modelView{
		ID: m.ID, Name: m.Name, Type: m.Type, Config: config, Status: m.Status,
		MaxWorkers: m.MaxWorkers, Description: m.Description, Fallbacks: m.Fallbacks,
		InputPrice: m.InputPrice, OutputPrice: m.OutputPrice,
		Running: load.Running, Queued: load.Queued, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt,
	}
}

type pagination struct {
	Page       int `json:"page"`
	PageSize   int `json:"page_size"`
	Total      int `json:"total"`
	TotalPages int `json:"total_pages"`
}
