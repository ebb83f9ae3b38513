package providers

import (
	"context"
	"errors"
	"fmt"

	cred "github.com/llmsched/llm-scheduler/internal/secrets"
)

// redacted wraps every provider built by New: its errors pass through the
// one redactor that knows every credential of the model's config (nested
// values, headers, URL passwords and credential query values: see
// secrets.Values), so that an upstream echoing a header, or a transport
// error quoting a URL with ?key=..., never puts a credential in a task's
// error or the log.
type redacted struct {
	Provider
	r cred.Redactor
}

func (p redacted) Generate(ctx context.Context, req Request, stream StreamFunc) (Result, error) {
	res, err := p.Provider.Generate(ctx, req, stream)
	return res, redactError(p.r, err)
}

func (p redacted) Embed(ctx context.Context, req Request) (Result, error) {
	res, err := p.Provider.Embed(ctx, req)
	return res, redactError(p.r, err)
}

// redactError rewrites an error's message without the credentials r knows,
// keeping its classification (*Error kind, status, Retry-After).
func redactError(r cred.Redactor, err error) error {
	if err == nil || len(r) == 0 {
		return err
	}
	var pe *Error
	if errors.As(err, &pe) {
		cp := *pe
		if inner := cp.Err; inner != nil && r.Redact(inner.Error()) != inner.Error() {
			cp.Err = errors.New(r.Redact(inner.Error()))
		}
		cp.Partial = r.Redact(cp.Partial)
		return &cp
	}
	if msg := r.Redact(err.Error()); msg != err.Error() {
		return fmt.Errorf("%s", msg)
	}
	return err
}

// Unwrap returns the provider New wrapped (for callers that need its own
// type, such as a template renderer's tests).
func Unwrap(p Provider) Provider {
	if r, ok := p.(redacted); ok {
		return r.Provider
	}
	return p
}
