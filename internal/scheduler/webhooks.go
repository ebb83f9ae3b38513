package scheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/ent/task"
	"github.com/llmsched/llm-scheduler/ent/webhookdelivery"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/outbound"
)

// Completion webhooks (docs/webhooks.md). A task may carry a callback_url
// (its own, or its API key's default). Every move of such a task to
// completed, failed or cancelled writes a webhook_deliveries row in the
// same database transaction as the move, so an accepted delivery is never
// lost; the webhooks package's dispatcher, in every worker process, sends
// it.

// maxCallbackURL bounds a callback_url.
const maxCallbackURL = 2048

// webhookPolicy is the outbound policy of callback URLs (config.
// WebhookPolicy), built once. It fails only when the scheduler's own
// listen host does not resolve; the worker's sender refuses to start then
// too, so a callback URL is not accepted that nobody would deliver.
func (s *Service) webhookPolicy() (*outbound.Policy, error) {
	if p := s.hookPolicy.Load(); p != nil {
		return p, nil
	}
	p, err := s.cfg.WebhookPolicy()
	if err != nil {
		return nil, fmt.Errorf("webhook outbound policy: %w", err)
	}
	s.hookPolicy.Store(p)
	return p, nil
}

// CheckCallbackURL validates a callback URL: http or https, a host, at
// most 2048 characters, and a destination the webhook policy allows
// (loopback and private addresses only with webhooks.allow_private). field
// names it in the error.
func (s *Service) CheckCallbackURL(raw, field string) error {
	if len(raw) > maxCallbackURL {
		return Invalid(field, "must be at most %d characters, got %d", maxCallbackURL, len(raw))
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() {
		return Invalid(field, "must be an absolute http or https URL, got %q", raw)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return Invalid(field, "must be an http or https URL, got scheme %q", u.Scheme)
	}
	if u.User != nil {
		return Invalid(field, "must not carry a user name or password")
	}
	if u.Fragment != "" {
		return Invalid(field, "must not have a #fragment")
	}
	pol, err := s.webhookPolicy()
	if err != nil {
		return err
	}
	if err := pol.CheckURL(u); err != nil {
		return Invalid(field, "%s", err.Error())
	}
	return nil
}

// resolveCallback sets v's callback URL: the request's, else its key's
// default; checks it and that there is a secret to sign with.
func (s *Service) resolveCallback(v *validated, field string) error {
	raw := ""
	if v.CallbackURL != nil {
		raw = strings.TrimSpace(*v.CallbackURL)
		if raw == "" {
			return Invalid(field, "must not be empty (leave it out for no webhook)")
		}
	} else if v.key != nil && v.key.CallbackURL != nil {
		raw = *v.key.CallbackURL
	}
	if raw == "" {
		return nil
	}
	if err := s.CheckCallbackURL(raw, field); err != nil {
		return err
	}
	if (v.key == nil || v.key.WebhookSecret == "") && s.cfg.Webhooks.Secret == "" {
		if v.key == nil {
			return Invalid(field, "cannot be signed: requests without an API key need webhooks.secret in the configuration")
		}
		return Invalid(field, "cannot be signed: API key %d has no webhook secret (create one with POST /api/v1/apikeys/%d/webhook-secret) and webhooks.secret is not set", v.key.ID, v.key.ID)
	}
	v.callback = &raw
	return nil
}

// OnWebhook registers a function told, after commit, that this process
// wrote a webhook delivery (the local dispatcher wakes up at once).
func (s *Service) OnWebhook(f func()) { s.onWebhook.Store(&f) }

func (s *Service) noteWebhook() {
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
func (s *Service) addDeliveries(ctx context.Context, c *ent.Client, ids []int) error {
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
			SetNextAttemptAt(now).SetGiveUpAt(now.Add(s.cfg.Webhooks.MaxAge.D())).SetCreatedAt(now))
	}
	if len(bs) == 0 {
		return nil
	}
	return c.WebhookDelivery.CreateBulk(bs...).Exec(ctx)
}

// WebhookDeliveries returns a task's deliveries, oldest first, with their
// attempts.
func (s *Service) WebhookDeliveries(ctx context.Context, taskID int) ([]*ent.WebhookDelivery, error) {
	ds, err := s.db.WebhookDelivery.Query().Where(webhookdelivery.TaskID(taskID)).
		WithAttemptHistory(func(q *ent.WebhookAttemptQuery) { q.Order(ent.Asc("number")) }).
		Order(ent.Asc(webhookdelivery.FieldID)).All(ctx)
	return ds, dbErr(err, "task", taskID)
}

// WebhookDelivery returns one delivery with its attempts.
func (s *Service) WebhookDelivery(ctx context.Context, id int) (*ent.WebhookDelivery, error) {
	d, err := s.db.WebhookDelivery.Query().Where(webhookdelivery.ID(id)).
		WithAttemptHistory(func(q *ent.WebhookAttemptQuery) { q.Order(ent.Asc("number")) }).Only(ctx)
	if ent.IsNotFound(err) {
		return nil, &Error{Code: CodeNotFound, Message: fmt.Sprintf("webhook delivery %d not found", id)}
	}
	return d, dbErr(err, "webhook delivery", id)
}

// Redeliver sends a delivery again, whatever its status: it becomes
// pending, due now, with a fresh webhooks.max_age; its id (the receiver's
// dedupe key) and its attempt history are kept, and the attempt numbers
// go on.
func (s *Service) Redeliver(ctx context.Context, id int) (*ent.WebhookDelivery, error) {
	now := s.now()
	n, err := s.db.WebhookDelivery.Update().Where(webhookdelivery.ID(id)).
		SetStatus(domain.WebhookPending).SetNextAttemptAt(now).SetGiveUpAt(now.Add(s.cfg.Webhooks.MaxAge.D())).
		ClearDeliveredAt().
		// Taken from a sender with a try in flight: that try is recorded
		// and this redelivery follows it (webhooks.Sender.record). The
		// lease stays, so no second try starts beside it.
		SetOwner("").Save(ctx)
	if err != nil {
		return nil, dbErr(err, "webhook delivery", id)
	}
	if n == 0 {
		return nil, &Error{Code: CodeNotFound, Message: fmt.Sprintf("webhook delivery %d not found", id)}
	}
	s.noteWebhook()
	return s.WebhookDelivery(ctx, id)
}
