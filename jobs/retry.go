package jobs

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"

	"github.com/llmsched/llm-scheduler/internal/scheduler"
)

// RetryPolicy computes the delay before the next attempt: exponential from
// Base, doubled per retry, with ±20% jitter, capped at Max. When the
// provider said when to come back (Retry-After and its kin), that delay is
// used instead, shorter or longer, capped at Max as well.
type RetryPolicy struct {
	Base time.Duration
	Max  time.Duration
}

// Delay returns the wait after the n-th failed attempt (n >= 1); a
// retryAfter above zero is the provider's own.
func (p RetryPolicy) Delay(n int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, p.Max)
	}
	d := float64(p.Base) * math.Pow(2, float64(max(n-1, 0)))
	d = min(d, float64(p.Max))
	d *= 0.8 + 0.4*rand.Float64()
	return time.Duration(min(d, float64(p.Max)))
}

// routeDelay is the wait before attempt n+1 of a task on route rt (n
// attempts used since its last manual retry): the policy's backoff within
// one model, none when the attempt moves on to a fallback (a different
// endpoint has no reason to wait for the first one to recover), except
// what the provider asked for.
func (p RetryPolicy) routeDelay(rt scheduler.Route, n int, retryAfter time.Duration) time.Duration {
	if rt.MovesOn(n) {
		return 0
	}
	return p.Delay(rt.OnModel(n), retryAfter)
}

// retryError tells asynq to run the task again after Delay. The attempt is
// already recorded in the database; asynq only keeps the timer.
type retryError struct {
	Delay time.Duration
	Err   error
}

func (e *retryError) Error() string { return fmt.Sprintf("retry in %s: %v", e.Delay, e.Err) }
func (e *retryError) Unwrap() error { return e.Err }

// retryDelayFunc is asynq's RetryDelayFunc: our own delay for attempts we
// scheduled, a short exponential one for infrastructure errors (database
// down) that happened before an attempt started.
func retryDelayFunc(n int, err error, _ *asynq.Task) time.Duration {
	var re *retryError
	if errors.As(err, &re) {
		return re.Delay
	}
	return min(time.Duration(float64(200*time.Millisecond)*math.Pow(2, float64(min(n, 8)))), 30*time.Second)
}
