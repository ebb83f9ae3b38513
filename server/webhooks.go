package server

import (
	"net/http"
	"time"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/scheduler"
)

// Completion webhooks over REST (docs/webhooks.md): a task's deliveries
// and their tries; an admin redelivers one and rotates a key's webhook
// secret.
func (h *rest) webhookRoutes(mux *http.ServeMux, wrap func(perm domain.Permission, f http.HandlerFunc) http.Handler) {
	mux.Handle("GET /api/v1/tasks/{id}/webhooks", wrap(domain.PermRead, h.taskWebhooks))
	mux.Handle("POST /api/v1/webhooks/deliveries/{id}/redeliver", wrap(domain.PermAdmin, h.redeliver))
	mux.Handle("POST /api/v1/apikeys/{id}/webhook-secret", wrap(domain.PermAdmin, h.rotateWebhookSecret))
}

// deliveryView is a webhook delivery as the REST API shows it.
type deliveryView struct {
	ID             int                  `json:"id"`
	TaskID         int                  `json:"task_id"`
	Event          string               `json:"event"`
	URL            string               `json:"url"`
	Status         domain.WebhookStatus `json:"status"`
	Attempts       int                  `json:"attempts"`
	NextAttemptAt  *time.Time           `json:"next_attempt_at,omitempty"`
	GiveUpAt       time.Time            `json:"give_up_at"`
	LastStatusCode *int                 `json:"last_status_code,omitempty"`
	LastError      string               `json:"last_error,omitempty"`
	CreatedAt      time.Time            `json:"created_at"`
	DeliveredAt    *time.Time           `json:"delivered_at,omitempty"`
	AttemptHistory []webhookAttemptView `json:"attempt_history"`
}

type webhookAttemptView struct {
	Number     int       `json:"number"`
	StatusCode *int      `json:"status_code,omitempty"`
	Error      string    `json:"error,omitempty"`
	DurationMS int       `json:"duration_ms"`
	Worker     string    `json:"worker,omitempty"`
	StartedAt  time.Time `json:"started_at"`
}

func newDeliveryView(d *ent.WebhookDelivery) deliveryView {
	v := deliveryView{ID: d.ID, TaskID: d.TaskID, Event: "task." + string(d.Event), URL: d.URL, Status: d.Status,
		Attempts: d.Attempts, GiveUpAt: d.GiveUpAt, LastStatusCode: d.LastStatusCode, LastError: d.LastError,
		CreatedAt: d.CreatedAt, DeliveredAt: d.DeliveredAt, AttemptHistory: []webhookAttemptView{}}
	if d.Status == domain.WebhookPending {
		next := d.NextAttemptAt
		v.NextAttemptAt = &next
	}
	for _, a := range d.Edges.AttemptHistory {
		v.AttemptHistory = append(v.AttemptHistory, webhookAttemptView{Number: a.Number, StatusCode: a.StatusCode,
			Error: a.Error, DurationMS: a.DurationMs, Worker: a.Worker, StartedAt: a.StartedAt})
	}
	return v
}

func newDeliveryViews(ds []*ent.WebhookDelivery) []deliveryView {
	out := make([]deliveryView, len(ds))
	for i, d := range ds {
		out[i] = newDeliveryView(d)
	}
	return out
}

func (h *rest) taskWebhooks(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	t, err := h.svc.GetTask(r.Context(), id)
	if err == nil {
		err = checkOwner(r.Context(), t)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ds, err := h.svc.WebhookDeliveries(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": newDeliveryViews(ds), "callback_url": t.CallbackURL})
}

func (h *rest) redeliver(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d, err := h.svc.Redeliver(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"data": newDeliveryView(d)})
}

func (h *rest) rotateWebhookSecret(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	k, secret, err := h.svc.Keys().RotateWebhookSecret(r.Context(), id)
	h.svc.ForgetKey(id)
	if err != nil {
		h.fail(w, r, scheduler.KeyError(err))
		return
	}
	v := newKeyView(k)
	v.WebhookSecret = secret
	writeJSON(w, http.StatusOK, map[string]any{"data": v})
}
