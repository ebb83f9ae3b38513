package providers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// ErrorKind says what the scheduler should do about a failed call.
type ErrorKind string

const (
	// KindRetryable may succeed later: 408, 409, 5xx, timeouts, connection errors.
	KindRetryable ErrorKind = "retryable"
	// KindRateLimited is a 429: retry after the provider's delay, and back
	// the whole model off.
	KindRateLimited ErrorKind = "rate_limited"
	// KindPermanent can never succeed: bad request, auth, not found,
	// context length. It fails the task at once.
	KindPermanent ErrorKind = "permanent"
	// KindTimeout is an attempt that ran past its timeout.
	KindTimeout ErrorKind = "timeout"
)

// Error is a classified provider failure.
type Error struct {
	Kind ErrorKind
	// Status is the HTTP status, 0 when there was none.
	Status int
	// RetryAfter is the provider's requested delay, 0 when none.
	RetryAfter time.Duration
	// Partial is output streamed before the failure.
	Partial string
	Err     error
}

func (e *Error) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("%s (HTTP %d): %v", e.Kind, e.Status, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Kind, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Permanent marks err as one that can never succeed.
func Permanent(err error) error { return &Error{Kind: KindPermanent, Err: err} }

// Retryable marks err as one that may succeed later.
func Retryable(err error) error { return &Error{Kind: KindRetryable, Err: err} }

// Classify returns the kind of err: its own when it is an *Error, timeout for
// deadline errors, retryable for network errors and anything unknown.
func Classify(err error) (ErrorKind, *Error) {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Kind, pe
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return KindTimeout, nil
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return KindRetryable, nil
	}
	return KindRetryable, nil
}

// PartialOf is the output a provider produced before err ended its call
// ("" when err carries none).
func PartialOf(err error) string {
	if _, pe := Classify(err); pe != nil {
		return pe.Partial
	}
	return ""
}

// StatusKind classifies an HTTP status code.
func StatusKind(status int) ErrorKind {
	switch {
	case status == 429:
		return KindRateLimited
	case status == 408 || status == 409 || status >= 500:
		return KindRetryable
	default:
		return KindPermanent
	}
}
