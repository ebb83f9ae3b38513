package server

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/scheduler"
)

// rest is the REST compatibility layer (docs/rest.md): the legacy API's
// paths and request fields, kept so that existing clients keep working.
type rest struct {
	svc *scheduler.Service
	log *slog.Logger
}

func (h *rest) routes(mux *http.ServeMux, wrap func(perm domain.Permission, f http.HandlerFunc) http.Handler) {
	mux.Handle("POST /api/v1/tasks", wrap(domain.PermSubmit, h.createTask))
	mux.Handle("GET /api/v1/tasks", wrap(domain.PermRead, h.listTasks))
	mux.Handle("GET /api/v1/tasks/{id}", wrap(domain.PermRead, h.getTask))
	mux.Handle("DELETE /api/v1/tasks/{id}", wrap(domain.PermOperate, h.taskAction(h.svc.CancelTask)))
	mux.Handle("POST /api/v1/tasks/{id}/cancel", wrap(domain.PermOperate, h.taskAction(h.svc.CancelTask)))
	mux.Handle("POST /api/v1/tasks/{id}/retry", wrap(domain.PermOperate, h.taskAction(h.svc.RetryTask)))
	mux.Handle("POST /api/v1/models", wrap(domain.PermAdmin, h.createModel))
	mux.Handle("GET /api/v1/models", wrap(domain.PermRead, h.listModels))
	mux.Handle("GET /api/v1/models/{id}", wrap(domain.PermRead, h.getModel))
	mux.Handle("PUT /api/v1/models/{id}", wrap(domain.PermAdmin, h.updateModel))
	mux.Handle("DELETE /api/v1/models/{id}", wrap(domain.PermAdmin, h.deleteModel))
	mux.Handle("PUT /api/v1/models/{id}/status", wrap(domain.PermModelStatus, h.setModelStatus))
	mux.Handle("GET /api/v1/stats/dashboard", wrap(domain.PermRead, h.dashboard))
	mux.Handle("GET /api/v1/stats/tasks/date", wrap(domain.PermRead, h.statsByDate))
	mux.Handle("GET /api/v1/stats/cost", wrap(domain.PermRead, h.costReport))
	mux.Handle("GET /api/v1/system/health", http.HandlerFunc(h.health))
	h.keyRoutes(mux, wrap)
	h.webhookRoutes(mux, wrap)
}

func (h *rest) fail(w http.ResponseWriter, r *http.Request, err error) { writeError(w, r, h.log, err) }

func pathID(r *http.Request) (int, error) {
	raw := r.PathValue("id")
	id, err := strconv.Atoi(raw)
	if err != nil || id <= 0 {
		return 0, scheduler.Invalid("id", "must be a positive integer, got %q", raw)
	}
	return id, nil
}

// queryInt reads an integer query parameter, def when absent.
func queryInt(r *http.Request, name string, def int) (int, error) {
	raw := r.URL.Query().Get(name)
	if raw == "" {
		return def, nil
	}
	v, err := strconv.Atoi(raw)
	if err != nil {
		return 0, scheduler.Invalid(name, "must be an integer, got %q", raw)
	}
	return v, nil
}

type createTaskBody struct {
	ModelID        int            `json:"model_id"`
	Type           string         `json:"type"`
	Input          string         `json:"input"`
	Priority       *int           `json:"priority"`
	Params         map[string]any `json:"params"`
	MaxRetries     *int           `json:"max_retries"`
	TimeoutSeconds *int           `json:"timeout_seconds"`
	RunAt          *string        `json:"run_at"`
	DelaySeconds   *int           `json:"delay_seconds"`
	Caller         string         `json:"caller"`
	CallbackURL    *string        `json:"callback_url"`
}

func (h *rest) createTask(w http.ResponseWriter, r *http.Request) {
	var b createTaskBody
	if err := decodeJSON(r, &b); err != nil {
		h.fail(w, r, err)
		return
	}
	b.Params = scheduler.NormalizeJSON(b.Params)
	var runAt *time.Time
	if b.RunAt != nil {
		at, err := time.Parse(time.RFC3339Nano, *b.RunAt)
		if err != nil {
			h.fail(w, r, scheduler.Invalid("run_at", "must be an RFC 3339 time such as 2026-01-02T15:04:05Z, got %q", *b.RunAt))
			return
		}
		runAt = &at
	}
	t, err := h.svc.CreateTask(r.Context(), scheduler.NewTask{
		ModelID: b.ModelID, Type: b.Type, Input: b.Input, Priority: b.Priority, Params: b.Params,
		MaxRetries: b.MaxRetries, TimeoutSeconds: b.TimeoutSeconds, RunAt: runAt, DelaySeconds: b.DelaySeconds, Caller: b.Caller,
		CallbackURL: b.CallbackURL, IdempotencyKey: r.Header.Get("Idempotency-Key"), APIKeyID: callerKeyID(r.Context()),
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"data": newTaskView(t)})
}

func (h *rest) listTasks(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page, err := queryInt(r, "page", 1)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	size, err := queryInt(r, "page_size", 20)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	modelID, err := queryInt(r, "model_id", 0)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	prio, err := queryInt(r, "priority", 0)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	res, err := h.svc.ListTasks(r.Context(), scheduler.TaskFilter{
		Status: q.Get("status"), ModelID: modelID, Type: q.Get("type"), Priority: prio,
		APIKeyID: ownerFilter(r.Context()), Caller: q.Get("caller"),
	}, scheduler.Page{Page: page, PageSize: size})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	views := make([]taskView, len(res.Tasks))
	outs := h.svc.OutputOf(r.Context(), res.Tasks...)
	for i, t := range res.Tasks {
		views[i] = newTaskView(t)
		views[i].Output = outs[t.ID]
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": views, "pagination": pagination{
		Page: res.Page, PageSize: res.PageSize, Total: res.Total,
		TotalPages: (res.Total + res.PageSize - 1) / res.PageSize,
	}})
}

func (h *rest) getTask(w http.ResponseWriter, r *http.Request) {
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
	v := newTaskView(t)
	v.Output = h.svc.OutputOf(r.Context(), t)[t.ID]
	as, err := h.svc.Attempts(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	for _, a := range as {
		v.AttemptHistory = append(v.AttemptHistory, newAttemptView(a))
	}
	if t.CallbackURL != nil {
		ds, err := h.svc.WebhookDeliveries(r.Context(), id)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		v.WebhookDeliveries = newDeliveryViews(ds)
	}
	d, err := h.svc.Explain(r.Context(), t)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if d != nil {
		v.PendingReason, v.PendingDetail, v.QueuePosition = string(d.Reason), d.Detail, d.Position
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": v})
}

// taskAction serves an action on one task (cancel, retry): it answers the
// task as the action left it.
func (h *rest) taskAction(act func(ctx context.Context, id int) (*ent.Task, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := pathID(r)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		t, err := act(r.Context(), id)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"data": newTaskView(t)})
	}
}

type createModelBody struct {
	Name        string         `json:"name"`
	Type        string         `json:"type"`
	Config      map[string]any `json:"config"`
	MaxWorkers  *int           `json:"max_workers"`
	Status      string         `json:"status"`
	Description string         `json:"description"`
	Fallbacks   []int          `json:"fallbacks"`
	InputPrice  *float64       `json:"input_price"`
	OutputPrice *float64       `json:"output_price"`
}

func (h *rest) createModel(w http.ResponseWriter, r *http.Request) {
	var b createModelBody
	if err := decodeJSON(r, &b); err != nil {
		h.fail(w, r, err)
		return
	}
	cfg := scheduler.NormalizeJSON(b.Config)
	m, err := h.svc.CreateModel(r.Context(), scheduler.NewModel{
		Name: b.Name, Type: b.Type, Config: cfg, MaxWorkers: b.MaxWorkers,
		Status: b.Status, Description: b.Description, Fallbacks: b.Fallbacks,
		InputPrice: b.InputPrice, OutputPrice: b.OutputPrice,
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"data": newModelView(m, h.svc.MaskedConfig(m), scheduler.ModelLoad{})})
}

func (h *rest) listModels(w http.ResponseWriter, r *http.Request) {
	ms, err := h.svc.ListModels(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	loads, err := h.svc.ModelLoads(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	views := make([]modelView, len(ms))
	for i, m := range ms {
		views[i] = newModelView(m, h.svc.MaskedConfig(m), loads[m.ID])
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": views})
}

func (h *rest) getModel(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	m, err := h.svc.GetModel(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeModel(w, r, m)
}

// writeModel answers a model with its live running and queued counts (the
// same view GET gives, also after a change).
func (h *rest) writeModel(w http.ResponseWriter, r *http.Request, m *ent.Model) {
	loads, err := h.svc.ModelLoads(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": newModelView(m, h.svc.MaskedConfig(m), loads[m.ID])})
}

type updateModelBody struct {
	Name        *string        `json:"name"`
	Config      map[string]any `json:"config"`
	MaxWorkers  *int           `json:"max_workers"`
	Status      *string        `json:"status"`
	Description *string        `json:"description"`
	Fallbacks   *[]int         `json:"fallbacks"`
	InputPrice  *float64       `json:"input_price"`
	OutputPrice *float64       `json:"output_price"`
}

func (h *rest) updateModel(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var b updateModelBody
	if err := decodeJSON(r, &b); err != nil {
		h.fail(w, r, err)
		return
	}
	cfg := scheduler.NormalizeJSON(b.Config)
	m, err := h.svc.UpdateModel(r.Context(), id, scheduler.ModelPatch{
		Name: b.Name, Config: cfg, MaxWorkers: b.MaxWorkers, Status: b.Status,
		Description: b.Description, Fallbacks: b.Fallbacks,
		InputPrice: b.InputPrice, OutputPrice: b.OutputPrice,
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeModel(w, r, m)
}

func (h *rest) deleteModel(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if _, err := h.svc.DeleteModel(r.Context(), id); err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{"id": id, "deleted": true}})
}

func (h *rest) setModelStatus(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var b struct {
		Status string `json:"status"`
	}
	if err := decodeJSON(r, &b); err != nil {
		h.fail(w, r, err)
		return
	}
	m, err := h.svc.SetModelStatus(r.Context(), id, b.Status)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeModel(w, r, m)
}

func (h *rest) dashboard(w http.ResponseWriter, r *http.Request) {
	st, err := h.svc.DashboardStats(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	st.PerCaller = scheduler.OwnCallers(st.PerCaller, ownerFilter(r.Context()))
	writeJSON(w, http.StatusOK, map[string]any{"data": st})
}

func (h *rest) statsByDate(w http.ResponseWriter, r *http.Request) {
	days, err := queryInt(r, "days", 7)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	st, err := h.svc.TaskStatsByDate(r.Context(), days)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": st})
}

func (h *rest) costReport(w http.ResponseWriter, r *http.Request) {
	days, err := queryInt(r, "days", 7)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	rep, err := h.svc.CostReport(r.Context(), days, ownerFilter(r.Context()))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": rep})
}

// healthRetryAfter is the Retry-After (seconds) of an unavailable health.
const healthRetryAfter = 5

func (h *rest) health(w http.ResponseWriter, r *http.Request) {
	hl := h.svc.Health(r.Context())
	status := http.StatusOK
	if hl.Status == "unavailable" {
		status = http.StatusServiceUnavailable
		// An outage, not a refusal: tell clients and balancers when to look again.
		w.Header().Set("Retry-After", strconv.Itoa(healthRetryAfter))
	}
	writeJSON(w, status, hl)
}
