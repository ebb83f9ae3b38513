package server

import (
	"net/http"
	"time"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/internal/apikeys"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/scheduler"
)

// API keys over REST: an admin lists, creates and changes keys (weight and
// token budgets); every key reads its own usage at /api/v1/usage.
func (h *rest) keyRoutes(mux *http.ServeMux, wrap func(perm domain.Permission, f http.HandlerFunc) http.Handler) {
	mux.Handle("GET /api/v1/apikeys", wrap(domain.PermAdmin, h.listKeys))
	mux.Handle("POST /api/v1/apikeys", wrap(domain.PermAdmin, h.createKey))
	mux.Handle("PUT /api/v1/apikeys/{id}", wrap(domain.PermAdmin, h.updateKey))
	mux.Handle("GET /api/v1/apikeys/{id}/usage", wrap(domain.PermAdmin, h.keyUsage))
	mux.Handle("GET /api/v1/usage", wrap(domain.PermRead, h.ownUsage))
}

// keyView is an API key as the REST API shows it (never the key itself,
// but once, on create).
type keyView struct {
	ID             int                  `json:"id"`
	Name           string               `json:"name"`
	Role           domain.Role          `json:"role"`
	Prefix         string               `json:"prefix"`
	Weight         int                  `json:"weight"`
	TokensPerDay   *int                 `json:"tokens_per_day"`
	TokensPerMonth *int                 `json:"tokens_per_month"`
	ModelBudgets   []domain.ModelBudget `json:"model_budgets"`
	CreatedAt      time.Time            `json:"created_at"`
	LastUsedAt     *time.Time           `json:"last_used_at"`
	RevokedAt      *time.Time           `json:"revoked_at"`
	Secret         string               `json:"key,omitempty"`
	// CallbackURL is the default callback_url of the key's tasks;
	// HasWebhookSecret says whether the key signs webhooks itself.
	CallbackURL      *string `json:"callback_url"`
	HasWebhookSecret bool    `json:"has_webhook_secret"`
	// WebhookSecret is shown once: on create and on rotation.
	WebhookSecret string `json:"webhook_secret,omitempty"`
}

func newKeyView(k *ent.APIKey) keyView {
	bs := k.ModelBudgets
	if bs == nil {
		bs = []domain.ModelBudget{}
	}
	return keyView{ID: k.ID, Name: k.Name, Role: k.Role, Prefix: k.Prefix, Weight: k.Weight,
		TokensPerDay: k.TokensPerDay, TokensPerMonth: k.TokensPerMonth, ModelBudgets: bs,
		CreatedAt: k.CreatedAt, LastUsedAt: k.LastUsedAt, RevokedAt: k.RevokedAt,
		CallbackURL: k.CallbackURL, HasWebhookSecret: k.WebhookSecret != ""}
}

type keyBody struct {
	Name           string                `json:"name"`
	Role           string                `json:"role"`
	Weight         *int                  `json:"weight"`
	TokensPerDay   *int                  `json:"tokens_per_day"`
	TokensPerMonth *int                  `json:"tokens_per_month"`
	ModelBudgets   *[]domain.ModelBudget `json:"model_budgets"`
	CallbackURL    *string               `json:"callback_url"`
}

func (b keyBody) settings() apikeys.Settings {
	return apikeys.Settings{Weight: b.Weight, TokensPerDay: b.TokensPerDay, TokensPerMonth: b.TokensPerMonth,
		ModelBudgets: b.ModelBudgets, CallbackURL: b.CallbackURL}
}

func (h *rest) listKeys(w http.ResponseWriter, r *http.Request) {
	ks, err := h.svc.Keys().List(r.Context())
	if err != nil {
		h.fail(w, r, scheduler.KeyError(err))
		return
	}
	views := make([]keyView, len(ks))
	for i, k := range ks {
		views[i] = newKeyView(k)
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": views})
}

func (h *rest) createKey(w http.ResponseWriter, r *http.Request) {
	var b keyBody
	if err := decodeJSON(r, &b); err != nil {
		h.fail(w, r, err)
		return
	}
	c, err := h.svc.Keys().CreateWith(r.Context(), b.Name, b.Role, b.settings())
	if err != nil {
		h.fail(w, r, scheduler.KeyError(err))
		return
	}
	v := newKeyView(c.Key)
	v.Secret, v.WebhookSecret = c.Secret, c.WebhookSecret
	writeJSON(w, http.StatusCreated, map[string]any{"data": v})
}

func (h *rest) updateKey(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var b keyBody
	if err := decodeJSON(r, &b); err != nil {
		h.fail(w, r, err)
		return
	}
	if b.Name != "" || b.Role != "" {
		h.fail(w, r, scheduler.Invalid("name", "and role cannot be changed; create a new key and revoke this one"))
		return
	}
	k, err := h.svc.Keys().Update(r.Context(), id, b.settings())
	h.svc.ForgetKey(id)
	if err != nil {
		h.fail(w, r, scheduler.KeyError(err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": newKeyView(k)})
}

func (h *rest) keyUsage(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	u, err := h.svc.KeyUsage(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": u})
}

// ownUsage is the calling key's usage; without auth there is no key.
func (h *rest) ownUsage(w http.ResponseWriter, r *http.Request) {
	id := callerKeyID(r.Context())
	if id == nil {
		h.fail(w, r, &scheduler.Error{Code: scheduler.CodeNotFound, Message: "auth is off: requests carry no API key, so there is no usage to show"})
		return
	}
	u, err := h.svc.KeyUsage(r.Context(), *id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": u})
}
