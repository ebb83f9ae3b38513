package domain

import (
	"fmt"
	"io"
	"slices"
	"strconv"
)

// TaskStatus is the lifecycle state of a task.
type TaskStatus string

const (
	// StatusPending: accepted and waiting for a worker slot, a retry backoff,
	// or its model to come online.
	StatusPending TaskStatus = "pending"
	// StatusRunning: an attempt is in progress on a worker.
	StatusRunning TaskStatus = "running"
	// StatusCompleted: an attempt succeeded and its output is stored. Terminal.
	StatusCompleted TaskStatus = "completed"
	// StatusFailed: the last attempt failed and no retry is left, or the error
	// can never succeed. Terminal, but can be retried by hand.
	StatusFailed TaskStatus = "failed"
	// StatusCancelled: cancelled by a user. Terminal, but can be retried by hand.
	StatusCancelled TaskStatus = "cancelled"
)

// TaskStatuses lists every task status in lifecycle order.
func TaskStatuses() []TaskStatus {
	return []TaskStatus{StatusPending, StatusRunning, StatusCompleted, StatusFailed, StatusCancelled}
}

// transitions is the whole state machine, written as data: for each target
// status, the statuses a task may move from.
//
//   - pending -> running: a worker starts an attempt.
//   - running -> running: a new attempt takes over from one whose worker was
//     lost (crash, kill, partition); the lost attempt stays in the history.
//   - running -> pending: an attempt failed with a retryable error (or its
//     worker was lost) and the task waits for the next attempt.
//   - running -> completed | failed: the attempt's outcome.
//   - pending | running -> cancelled: a user cancels.
//   - failed | cancelled -> pending: a user retries by hand.
var transitions = map[TaskStatus][]TaskStatus{
	StatusPending:   {StatusRunning, StatusFailed, StatusCancelled},
	StatusRunning:   {StatusPending, StatusRunning},
	StatusCompleted: {StatusRunning},
	StatusFailed:    {StatusRunning, StatusPending},
	StatusCancelled: {StatusPending, StatusRunning},
}

// AllowedFrom returns the statuses from which a task may move to target.
func AllowedFrom(target TaskStatus) []TaskStatus {
	return slices.Clone(transitions[target])
}

// CanTransition reports whether a task in status from may move to status to.
func CanTransition(from, to TaskStatus) bool {
	return slices.Contains(transitions[to], from)
}

// Terminal reports whether no worker will touch a task in this status again
// unless a user retries it.
func (s TaskStatus) Terminal() bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusCancelled
}

// Unfinished reports whether the task still has work ahead of it.
func (s TaskStatus) Unfinished() bool { return s == StatusPending || s == StatusRunning }

// Valid reports whether s is a known status.
func (s TaskStatus) Valid() bool { return slices.Contains(TaskStatuses(), s) }

// Values implements ent's EnumValues so the schema stores exactly these strings.
func (TaskStatus) Values() []string { return stringsOf(TaskStatuses()) }

// ParseTaskStatus parses the REST spelling ("pending") or the GraphQL one ("PENDING").
func ParseTaskStatus(v string) (TaskStatus, error) {
	return parseEnum(v, TaskStatuses(), "status")
}

// MarshalGQL writes the GraphQL enum name (PENDING).
func (s TaskStatus) MarshalGQL(w io.Writer) { writeGQL(w, string(s)) }

// UnmarshalGQL reads the GraphQL enum name.
func (s *TaskStatus) UnmarshalGQL(v any) error { return unmarshalGQL(v, s, TaskStatuses(), "status") }

func stringsOf[T ~string](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

// gqlName turns a stored value ("text-generation") into a GraphQL enum name
// ("TEXT_GENERATION").
func gqlName(v string) string {
	b := []byte(v)
	for i, c := range b {
		switch {
		case c == '-':
			b[i] = '_'
		case c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func writeGQL(w io.Writer, v string) { _, _ = io.WriteString(w, strconv.Quote(gqlName(v))) }

func parseEnum[T ~string](v string, all []T, field string) (T, error) {
	for _, e := range all {
		if string(e) == v || gqlName(string(e)) == v {
			return e, nil
		}
	}
	var zero T
	return zero, fmt.Errorf("%s must be one of %v, got %q", field, all, v)
}

func unmarshalGQL[T ~string](v any, dst *T, all []T, field string) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("%s must be a string enum, got %T", field, v)
	}
	e, err := parseEnum(s, all, field)
	if err != nil {
		return err
	}
	*dst = e
	return nil
}
