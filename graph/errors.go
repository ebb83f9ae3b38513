package graph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/llmsched/llm-scheduler/internal/events"
	"github.com/llmsched/llm-scheduler/internal/scheduler"
)

// ErrorPresenter gives every resolver error extensions.code from the same
// table the REST layer maps to HTTP statuses (scheduler.CodeOf), plus
// extensions.field for bad input and extensions.retryAfter (seconds) for
// QUEUE_FULL and UNAVAILABLE. Errors gqlgen raised itself (parse, validation,
// complexity, persisted queries) keep the codes gqlgen gave them. INTERNAL
// errors are logged and their message hidden.
func ErrorPresenter(log *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		ge := graphql.DefaultErrorPresenter(ctx, err)
		if _, ok := ge.Extensions["code"]; ok && !hasDomainError(err) {
			return ge
		}
		if len(ge.Path) == 0 && !hasDomainError(err) {
			if msg, ok := transportError(ge.Message); ok {
				// A client's malformed request, not an internal error: no
				// ERROR log line, and the body (which gqlgen quotes in
				// full, credentials and all) is not repeated.
				ge.Message = msg
				ge.Extensions = map[string]any{"code": "BAD_REQUEST"}
				return ge
			}
		}
		code := codeOf(err)
		if ge.Extensions == nil {
			ge.Extensions = map[string]any{}
		}
		ge.Extensions["code"] = string(code)
		var se *scheduler.Error
		if errors.As(err, &se) {
			if se.Field != "" {
				ge.Extensions["field"] = se.Field
			}
			if se.RetryAfter > 0 {
				ge.Extensions["retryAfter"] = int(math.Ceil(se.RetryAfter.Seconds()))
			}
			if b := se.Budget; b != nil {
				ge.Extensions["budget"] = map[string]any{"period": b.Period, "modelID": b.ModelID,
					"limit": b.Limit, "used": b.Used, "resetsAt": b.ResetsAt.Format(time.RFC3339)}
			}
		}
		if code == scheduler.CodeInternal {
			log.Error("graphql internal error", "path", ge.Path.String(), "err", err)
			ge.Message = "internal error; see the server log"
		}
		return ge
	}
}

// transportError recognises the errors gqlgen's HTTP transports raise for
// a request they cannot read, and rewrites their message without the body.
func transportError(msg string) (string, bool) {
	const (
		decode = "json request body could not be decoded: "
		read   = "could not read request body: "
	)
	switch {
	case strings.HasPrefix(msg, decode):
		reason := strings.TrimPrefix(msg, decode)
		if i := strings.Index(reason, " body:"); i >= 0 {
			reason = reason[:i]
		}
		if len(reason) > 200 {
			reason = reason[:200] + "..."
		}
		return "the request body must be one JSON object {query, variables, operationName} (no batches): " + reason, true
	case strings.HasPrefix(msg, read):
		return "could not read the request body: " + strings.TrimPrefix(msg, read), true
	}
	return "", false
}

func hasDomainError(err error) bool {
	var se *scheduler.Error
	return errors.As(err, &se)
}

// codeOf is scheduler.CodeOf, with the bus's overflow made explicit.
func codeOf(err error) scheduler.Code {
	if errors.Is(err, events.ErrOverflow) {
		return scheduler.CodeUnavailable
	}
	return scheduler.CodeOf(err)
}

// Recover turns a resolver panic into an INTERNAL error (logged with the
// panic value) instead of gqlgen's default message.
func Recover(log *slog.Logger) graphql.RecoverFunc {
	return func(ctx context.Context, v any) error {
		log.Error("graphql resolver panic", "panic", fmt.Sprint(v))
		return errors.New("internal error")
	}
}

// countRejected counts a refused submission (QUEUE_FULL, BAD_USER_INPUT,
// ...) in the process's rejected-submissions metric, and returns err
// unchanged.
func (r *Resolver) countRejected(err error) error {
	if err != nil {
		r.Metrics.Rejected("graphql", string(scheduler.CodeOf(err)))
	}
	return err
}
