package graph

import (
	"context"
	"strconv"
	"sync"

	"github.com/99designs/gqlgen/graphql"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/scheduler"
)

func itoa(i int) string { return strconv.Itoa(i) }

func (in *CreateTaskInput) newTask(submitter *int) scheduler.NewTask {
	n := scheduler.NewTask{
		ModelID: in.ModelID, Type: string(in.Type), Input: in.Input, Priority: in.Priority,
		Params: scheduler.NormalizeJSON(in.Params), MaxRetries: in.MaxRetries, TimeoutSeconds: in.TimeoutSeconds,
		RunAt: in.RunAt, DelaySeconds: in.DelaySeconds, APIKeyID: submitter, CallbackURL: in.CallbackURL,
	}
	if in.IdempotencyKey != nil {
		n.IdempotencyKey = *in.IdempotencyKey
	}
	if in.Caller != nil {
		n.Caller = *in.Caller
	}
	return n
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// diagnosisMemo remembers Explain's answer for the task objects of one
// operation, so pendingReason, pendingDetail and queuePosition of one task
// cost one diagnosis. The memo is installed by memoExtension.
type diagnosisMemo struct {
	mu sync.Mutex
	m  map[*ent.Task]*scheduler.Diagnosis
}

type memoKey struct{}

// memoExtension gives every operation its own diagnosisMemo.
type memoExtension struct{}

var (
	_ graphql.HandlerExtension     = memoExtension{}
	_ graphql.OperationInterceptor = memoExtension{}
)

func (memoExtension) ExtensionName() string                   { return "DiagnosisMemo" }
func (memoExtension) Validate(graphql.ExecutableSchema) error { return nil }
func (memoExtension) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	return next(context.WithValue(ctx, memoKey{}, &diagnosisMemo{m: map[*ent.Task]*scheduler.Diagnosis{}}))
}

// explain diagnoses a pending task once per operation (nil when it is not
// pending).
func (r *Resolver) explain(ctx context.Context, t *ent.Task) (*scheduler.Diagnosis, error) {
	memo, _ := ctx.Value(memoKey{}).(*diagnosisMemo)
	if memo != nil {
		memo.mu.Lock()
		d, ok := memo.m[t]
		memo.mu.Unlock()
		if ok {
			return d, nil
		}
	}
	d, err := r.Svc.Explain(ctx, t)
	if err != nil {
		return nil, err
	}
	if memo != nil {
		memo.mu.Lock()
		if len(memo.m) >= 1000 { // a long subscription sees many objects
			clear(memo.m)
		}
		memo.m[t] = d
		memo.mu.Unlock()
	}
	return d, nil
}

// budgets is a ModelBudgetInput list as apikeys.Settings takes it: nil
// (absent) keeps a key's list, empty clears it.
func budgets(in []*domain.ModelBudget) *[]domain.ModelBudget {
	if in == nil {
		return nil
	}
	out := make([]domain.ModelBudget, len(in))
	for i, b := range in {
		out[i] = *b
	}
	return &out
}
