package providers

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/llmsched/llm-scheduler/internal/outbound"
)

// maxRetryAfter caps a provider's requested delay: a broken header must not
// park a task for days.
const maxRetryAfter = 24 * time.Hour

// RetryAfter reads how long a provider asks us to wait from its response
// headers: retry-after-ms, Retry-After (seconds or an HTTP date), then
// OpenAI's x-ratelimit-reset-requests / x-ratelimit-reset-tokens ("1s",
// "6m0s", "20ms"), preferring the reset of the limit that ran out. Zero
// means the headers ask for nothing.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	if h == nil {
		return 0
	}
	clamp := func(d time.Duration) time.Duration { return min(max(d, 0), maxRetryAfter) }
	if v := h.Get("retry-after-ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 {
			return clamp(time.Duration(ms * float64(time.Millisecond)))
		}
	}
	if v := h.Get("Retry-After"); v != "" {
		if s, err := strconv.ParseFloat(v, 64); err == nil && s > 0 {
			return clamp(time.Duration(s * float64(time.Second)))
		}
		if t, err := http.ParseTime(v); err == nil {
			return clamp(t.Sub(now))
		}
	}
	reqReset := parseReset(h.Get("x-ratelimit-reset-requests"))
	tokReset := parseReset(h.Get("x-ratelimit-reset-tokens"))
	switch {
	case h.Get("x-ratelimit-remaining-requests") == "0" && h.Get("x-ratelimit-remaining-tokens") != "0":
		return clamp(reqReset)
	case h.Get("x-ratelimit-remaining-tokens") == "0" && h.Get("x-ratelimit-remaining-requests") != "0":
		return clamp(tokReset)
	}
	return clamp(max(reqReset, tokReset))
}

// parseReset reads an x-ratelimit-reset-* value: a Go-style duration as
// OpenAI sends it ("6m0s", "1.5s", "20ms") or plain seconds.
func parseReset(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if d, err := time.ParseDuration(v); err == nil {
		return d
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		return time.Duration(s * float64(time.Second))
	}
	return 0
}

// contextLengthMarkers are phrases OpenAI, vLLM, llama.cpp and Ollama use
// when a prompt does not fit the model: such a request can never succeed.
var contextLengthMarkers = []string{
	"context_length_exceeded", "context length", "maximum context", "context window",
	"exceeds the available context size", "too many tokens", "prompt is too long",
}

// IsContextLength reports whether a provider message says the request is
// too long for the model.
func IsContextLength(msg string) bool {
	m := strings.ToLower(msg)
	for _, s := range contextLengthMarkers {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// HTTPError classifies a provider's HTTP error answer: 400, 401, 403, 404,
// 422 and context-length errors are permanent; 408, 409 and 5xx retryable;
// 429 rate limited. Retry-After and x-ratelimit-reset-* set RetryAfter.
// msg is the provider's own message, shown to the user as is (after
// redact).
func HTTPError(status int, h http.Header, msg string) *Error {
	kind := StatusKind(status)
	if IsContextLength(msg) {
		kind = KindPermanent
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	e := &Error{Kind: kind, Status: status, Err: errors.New(msg)}
	if kind != KindPermanent {
		e.RetryAfter = RetryAfter(h, time.Now())
	}
	return e
}

// transportError classifies an error of the HTTP round trip itself (no
// status): a deadline is a timeout, a cancel is passed on as is (the caller
// is stopping), anything else (refused, reset, DNS, a body cut short) is
// retryable. partial is output streamed before it.
func transportError(ctx context.Context, err error, partial string) error {
	switch {
	case ctx.Err() == context.Canceled:
		return &Error{Kind: KindRetryable, Partial: partial, Err: ctx.Err()}
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() == context.DeadlineExceeded:
		return &Error{Kind: KindTimeout, Partial: partial, Err: errors.New("the request ran past its timeout")}
	case errors.Is(err, outbound.ErrRefused):
		// The destination is refused by policy: retrying cannot help, and
		// the error names the address, not the URL (which may carry
		// credentials).
		var re *outbound.RefusedError
		errors.As(err, &re)
		return &Error{Kind: KindPermanent, Partial: partial, Err: re}
	}
	return &Error{Kind: KindRetryable, Partial: partial, Err: err}
}
