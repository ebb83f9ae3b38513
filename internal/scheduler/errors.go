package scheduler

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/llmsched/llm-scheduler/ent"
)

// Code classifies an error for clients. The REST layer maps codes to HTTP
// statuses and the GraphQL layer to extensions.code, each in one table.
type Code string

const (
	CodeInvalid   Code = "BAD_USER_INPUT"
	CodeNotFound  Code = "NOT_FOUND"
	CodeConflict  Code = "CONFLICT"
	CodeQueueFull Code = "QUEUE_FULL"
	// CodeBudgetExceeded: the API key's token budget is used up (Budget
	// says which, how much and until when).
	CodeBudgetExceeded  Code = "BUDGET_EXCEEDED"
	CodeUnavailable     Code = "UNAVAILABLE"
	CodeUnauthenticated Code = "UNAUTHENTICATED"
	CodeForbidden       Code = "FORBIDDEN"
	CodeTooLarge        Code = "PAYLOAD_TOO_LARGE"
	// CodeTimeout: the request took longer than its time budget (a body
	// sent too slowly, server.read_timeout; a GraphQL operation past
	// server.graphql_timeout).
	CodeTimeout  Code = "TIMEOUT"
	CodeInternal Code = "INTERNAL"
)

// Error is an error a client can act on.
type Error struct {
	Code Code
	// Field names the offending input field, for CodeInvalid.
	Field   string
	Message string
	// RetryAfter suggests when to try again, for CodeQueueFull and CodeUnavailable.
	RetryAfter time.Duration
	// Budget details a CodeBudgetExceeded.
	Budget *BudgetExceeded
	Err    error
}

func (e *Error) Error() string {
	if e.Err != nil && e.Message == "" {
		return e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Invalid reports bad input in field.
func Invalid(field, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	if field != "" {
		msg = field + ": " + msg
	}
	return &Error{Code: CodeInvalid, Field: field, Message: msg}
}

// NotFound reports an unknown id.
func NotFound(what string, id int) *Error {
	return &Error{Code: CodeNotFound, Message: fmt.Sprintf("%s %d not found", what, id)}
}

// Conflict reports a request that clashes with the current state.
func Conflict(format string, args ...any) *Error {
	return &Error{Code: CodeConflict, Message: fmt.Sprintf(format, args...)}
}

// Unavailable reports a dependency that does not answer.
func Unavailable(dep string, err error) *Error {
	return &Error{Code: CodeUnavailable, Message: dep + " unavailable: " + err.Error(), RetryAfter: 5 * time.Second, Err: err}
}

// CodeOf classifies any error.
func CodeOf(err error) Code {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	case ent.IsNotFound(err):
		return CodeNotFound
	case ent.IsValidationError(err):
		return CodeInvalid
	case ent.IsConstraintError(err):
		return CodeConflict
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return CodeUnavailable
	}
	return CodeInternal
}

// DBError is dbErr for adapters that read the database themselves (the
// GraphQL connections): what and id name the row for a NOT_FOUND.
func DBError(err error, what string, id int) error { return dbErr(err, what, id) }

// dbErr wraps a database error: not-found stays not-found, everything else
// means the database did not do what was asked.
func dbErr(err error, what string, id int) error {
	switch {
	case err == nil:
		return nil
	case ent.IsNotFound(err):
		return NotFound(what, id)
	case ent.IsConstraintError(err), ent.IsValidationError(err):
		return err
	case errors.Is(err, context.Canceled):
		return err
	}
	return Unavailable("database", err)
}
