package server

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/llmsched/llm-scheduler/internal/scheduler"
)

// openAIError is an error of the OpenAI front door in OpenAI's shape,
// {"error":{"message","type","param","code"}}, with the HTTP status that
// OpenAI's SDKs act on (they raise one error class per status and retry
// 408, 409, 429 and 5xx).
type openAIError struct {
	Status  int
	Message string
	Type    string
	// Param names the offending request field ("" is sent as null).
	Param string
	// Code is a machine-readable reason ("" is sent as null).
	Code       string
	RetryAfter time.Duration
}

func (e *openAIError) Error() string { return e.Message }

// openAITypes is the error type sent with each status.
var openAITypes = map[int]string{
	http.StatusBadRequest:            "invalid_request_error",
	http.StatusUnauthorized:          "invalid_request_error",
	http.StatusForbidden:             "permission_error",
	http.StatusNotFound:              "invalid_request_error",
	http.StatusRequestTimeout:        "timeout_error",
	http.StatusConflict:              "invalid_request_error",
	http.StatusRequestEntityTooLarge: "invalid_request_error",
	http.StatusUnprocessableEntity:   "invalid_request_error",
	http.StatusTooManyRequests:       "rate_limit_error",
}

func openAIType(status int) string {
	if t, ok := openAITypes[status]; ok {
		return t
	}
	if status >= 500 {
		return "server_error"
	}
	return "invalid_request_error"
}

// openAICodes are the codes sent for the scheduler's error codes.
var openAICodes = map[scheduler.Code]string{
	scheduler.CodeInvalid:         "invalid_value",
	scheduler.CodeNotFound:        "not_found",
	scheduler.CodeConflict:        "conflict",
	scheduler.CodeQueueFull:       "queue_full",
	scheduler.CodeUnavailable:     "unavailable",
	scheduler.CodeUnauthenticated: "invalid_api_key",
	scheduler.CodeForbidden:       "insufficient_permissions",
	scheduler.CodeTooLarge:        "request_too_large",
	scheduler.CodeInternal:        "internal_error",
}

// invalidParam is a 400 naming the request field and the rule it broke.
func invalidParam(param, format string, args ...any) *openAIError {
	return &openAIError{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: param, Code: "invalid_value",
		Message: param + ": " + fmt.Sprintf(format, args...)}
}

func modelNotFound(name string) *openAIError {
	return &openAIError{Status: http.StatusNotFound, Type: "invalid_request_error", Param: "model", Code: "model_not_found",
		Message: fmt.Sprintf("The model `%s` does not exist: no registered model has that name (GET /v1/models lists them)", name)}
}

// toOpenAIError maps any error to OpenAI's shape: the scheduler's codes
// through the REST layer's status table, with the scheduler's field
// names turned into the request's (fields maps them; a field it does not
// name is dropped).
func toOpenAIError(err error, fields func(string) string) *openAIError {
	var oe *openAIError
	if errors.As(err, &oe) {
		return oe
	}
	code := scheduler.CodeOf(err)
	status := statusOf[code]
	if status == 0 {
		status = http.StatusInternalServerError
	}
	e := &openAIError{Status: status, Type: openAIType(status), Code: openAICodes[code], Message: err.Error()}
	var se *scheduler.Error
	if errors.As(err, &se) {
		e.RetryAfter = se.RetryAfter
		if se.Field != "" && fields != nil {
			e.Param = fields(se.Field)
			if e.Param != "" && e.Param != se.Field {
				e.Message = strings.Replace(e.Message, se.Field, e.Param, 1)
			}
		}
	}
	return e
}

// writeOpenAIError writes err in OpenAI's shape. Internal errors are
// logged and answered without their detail, as writeError does.
func writeOpenAIError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error, fields func(string) string) {
	e := toOpenAIError(err, fields)
	msg := e.Message
	if e.Status == http.StatusInternalServerError && scheduler.CodeOf(err) == scheduler.CodeInternal && !isOpenAIError(err) {
		log.Error("internal error", "method", r.Method, "path", r.URL.Path, "err", err, "request_id", RequestID(r.Context()))
		msg = "internal error; see the server log for request " + RequestID(r.Context())
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(e.RetryAfter.Seconds()))))
	}
	writeJSON(w, e.Status, openAIErrorBody(e, msg))
}

func isOpenAIError(err error) bool {
	var oe *openAIError
	return errors.As(err, &oe)
}

// openAIErrorBody is the JSON body of e (with msg as its message).
func openAIErrorBody(e *openAIError, msg string) map[string]any {
	return map[string]any{"error": map[string]any{
		"message": msg, "type": e.Type, "param": nullable(e.Param), "code": nullable(e.Code),
	}}
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}
