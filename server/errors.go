package server

import (
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"

	"github.com/llmsched/llm-scheduler/internal/scheduler"
)

// statusOf is the one table from error codes to HTTP statuses.
var statusOf = map[scheduler.Code]int{
	scheduler.CodeInvalid:         http.StatusBadRequest,
	scheduler.CodeNotFound:        http.StatusNotFound,
	scheduler.CodeConflict:        http.StatusConflict,
	scheduler.CodeQueueFull:       http.StatusTooManyRequests,
	scheduler.CodeBudgetExceeded:  http.StatusTooManyRequests,
	scheduler.CodeUnavailable:     http.StatusServiceUnavailable,
	scheduler.CodeUnauthenticated: http.StatusUnauthorized,
	scheduler.CodeForbidden:       http.StatusForbidden,
	scheduler.CodeTooLarge:        http.StatusRequestEntityTooLarge,
	scheduler.CodeTimeout:         http.StatusRequestTimeout,
	scheduler.CodeInternal:        http.StatusInternalServerError,
}

// errorBody is the JSON shape of every REST error.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    scheduler.Code `json:"code"`
	Message string         `json:"message"`
	Field   string         `json:"field,omitempty"`
	// Budget says which token budget a BUDGET_EXCEEDED refusal hit.
	Budget *scheduler.BudgetExceeded `json:"budget,omitempty"`
}

// writeError maps err to a status and writes {"error": {...}}.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	code := scheduler.CodeOf(err)
	status := statusOf[code]
	if status == 0 {
		status = http.StatusInternalServerError
	}
	d := errorDetail{Code: code, Message: err.Error()}
	var se *scheduler.Error
	if errors.As(err, &se) {
		d.Field, d.Budget = se.Field, se.Budget
		if se.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(se.RetryAfter.Seconds()))))
		}
	}
	if r.Method == http.MethodPost && r.URL.Path == "/api/v1/tasks" {
		if rec := recorderOf(w); rec != nil {
			rec.metrics.Rejected("rest", string(code))
		}
	}
	if code == scheduler.CodeInternal {
		log.Error("internal error", "method", r.Method, "path", r.URL.Path, "err", err, "request_id", RequestID(r.Context()))
		d.Message = "internal error; see the server log for request " + RequestID(r.Context())
	}
	writeJSON(w, status, errorBody{Error: d})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client went away; nothing left to tell it
}
