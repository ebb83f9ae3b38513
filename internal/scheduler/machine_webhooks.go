package scheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/ent/task"
	"github.com/llmsched/llm-scheduler/internal/domain"
)

// Completion webhooks (docs/webhooks.md). A task may carry a callback_url
// (its own, or its API key's default). Every move of such a task to
// completed, failed or cancelled writes a webhook_deliveries row in the
// same database transaction as the move, so an accepted delivery is never
// lost; the webhooks package's dispatcher, in every worker process, sends
// it.

func (s *machine) noteWebhook() {
	if f := s.onWebhook.Load(); f != nil {
		(*f)()
	}
}

// needsWebhook reports whether moving t to status to owes a webhook.
func needsWebhook(t *ent.Task, to domain.TaskStatus) bool {
	return t.CallbackURL != nil && to.Terminal()
}

// WebhookPayload is the "task" object of a webhook body: the task as it
// was when it reached a terminal status.
type WebhookPayload struct {
	ID               int               `json:"id"`
	Status           domain.TaskStatus `json:"status"`
	ModelID          int               `json:"model_id"`
	Type             domain.TaskType   `json:"type"`
	Priority         int               `json:"priority"`
	Caller           string            `json:"caller"`
	Output           *string           `json:"output,omitempty"`
	Embedding        []float64         `json:"embedding,omitempty"`
	Error            *string           `json:"error,omitempty"`
	Attempts         int               `json:"attempts"`
	PromptTokens     int               `json:"prompt_tokens"`
	CompletionTokens int               `json:"completion_tokens"`
	TotalTokens      int               `json:"total_tokens"`
	TokenSource      string            `json:"token_source,omitempty"`
	Cost             float64           `json:"cost"`
	CreatedAt        time.Time         `json:"created_at"`
	StartedAt        *time.Time        `json:"started_at"`
	FinishedAt       *time.Time        `json:"finished_at"`
	// QueueMs is started_at - created_at, RunMs finished_at - started_at
	// (absent when the task never started).
	QueueMs *int64 `json:"queue_ms,omitempty"`
	RunMs   *int64 `json:"run_ms,omitempty"`
}

func payloadOf(t *ent.Task) WebhookPayload {
	p := WebhookPayload{ID: t.ID, Status: t.Status, ModelID: t.ModelID, Type: t.Type, Priority: t.Priority,
		Caller: t.Caller, Attempts: t.Attempts, PromptTokens: t.PromptTokens, CompletionTokens: t.CompletionTokens,
		TotalTokens: t.TotalTokens, TokenSource: t.TokenSource, Cost: t.Cost, CreatedAt: t.CreatedAt.UTC(),
		StartedAt: utcPtr(t.StartedAt), FinishedAt: utcPtr(t.FinishedAt), Embedding: t.Embedding}
	if t.Status == domain.StatusCompleted {
		out := t.Output
		p.Output = &out
	} else if t.Error != "" {
		e := t.Error
		p.Error = &e
	}
	if t.StartedAt != nil {
		q := t.StartedAt.Sub(t.CreatedAt).Milliseconds()
		p.QueueMs = &q
		if t.FinishedAt != nil {
			r := t.FinishedAt.Sub(*t.StartedAt).Milliseconds()
			p.RunMs = &r
		}
	}
	return p
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// addDeliveries writes one delivery per task of ids that now sits in a
// terminal status with a callback URL, reading the rows as c (a
// transaction) sees them after the move.
func (s *machine) addDeliveries(ctx context.Context, c *ent.Client, ids []int) error {
	if len(ids) == 0 {
		return nil
	}
	ts, err := c.Task.Query().Where(task.IDIn(ids...), task.CallbackURLNotNil()).All(ctx)
	if err != nil {
		return err
	}
	now := s.now()
	var bs []*ent.WebhookDeliveryCreate
	for _, t := range ts {
		if !t.Status.Terminal() {
			continue
		}
		raw, err := json.Marshal(payloadOf(t))
		if err != nil {
			return fmt.Errorf("webhook payload of task %d: %w", t.ID, err)
		}
		bs = append(bs, c.WebhookDelivery.Create().SetTaskID(t.ID).SetEvent(t.Status).SetURL(*t.CallbackURL).
			SetNillableAPIKeyID(t.APIKeyID).SetPayload(string(raw)).SetStatus(domain.WebhookPending).
			SetNextAttemptAt(now).SetGiveUpAt(now.Add(s.hookMaxAge)).SetCreatedAt(now))
	}
	if len(bs) == 0 {
		return nil
	}
	return c.WebhookDelivery.CreateBulk(bs...).Exec(ctx)
}
