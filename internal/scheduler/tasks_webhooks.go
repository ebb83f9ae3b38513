package scheduler

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/ent/webhookdelivery"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/outbound"
)

// maxCallbackURL bounds a callback_url.
const maxCallbackURL = 2048

// webhookPolicy is the outbound policy of callback URLs (config.
// WebhookPolicy), built once. It fails only when the scheduler's own
// listen host does not resolve; the worker's sender refuses to start then
// too, so a callback URL is not accepted that nobody would deliver.
func (s *Tasks) webhookPolicy() (*outbound.Policy, error) {
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
func (s *Tasks) CheckCallbackURL(raw, field string) error {
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
func (s *Tasks) resolveCallback(v *validated, field string) error {
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

// WebhookDeliveries returns a task's deliveries, oldest first, with their
// attempts.
func (s *Tasks) WebhookDeliveries(ctx context.Context, taskID int) ([]*ent.WebhookDelivery, error) {
	ds, err := s.db.WebhookDelivery.Query().Where(webhookdelivery.TaskID(taskID)).
		WithAttemptHistory(func(q *ent.WebhookAttemptQuery) { q.Order(ent.Asc("number")) }).
		Order(ent.Asc(webhookdelivery.FieldID)).All(ctx)
	return ds, dbErr(err, "task", taskID)
}

// WebhookDelivery returns one delivery with its attempts.
func (s *Tasks) WebhookDelivery(ctx context.Context, id int) (*ent.WebhookDelivery, error) {
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
func (s *Tasks) Redeliver(ctx context.Context, id int) (*ent.WebhookDelivery, error) {
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
	s.m.noteWebhook()
	return s.WebhookDelivery(ctx, id)
}
