package graph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/llmsched/llm-scheduler/internal/scheduler"
)

// Limits of the handler, with the defaults NewHandler applies.
const (
	DefaultMaxDepth      = 12
	DefaultMaxComplexity = 5000
	DefaultAPQCacheSize  = 1000
	queryCacheSize       = 1000
)

// HandlerOptions configure NewHandler.
type HandlerOptions struct {
	Resolver *Resolver
	Log      *slog.Logger
	// Introspection serves __schema and __type (config
	// server.introspection; off in production by default).
	Introspection bool
	// MaxDepth bounds how deeply selections nest (introspection fields
	// excluded); MaxComplexity bounds gqlgen's complexity score.
	MaxDepth      int
	MaxComplexity int
	// MaxSelections bounds a document's field selections with fragments
	// expanded (see SelectionLimit).
	MaxSelections int
	// MaxRepeats bounds how often one response key is selected in one
	// selection set (see SelectionLimit).
	MaxRepeats int
	// APQCacheSize is how many automatic persisted queries are remembered.
	APQCacheSize int
	// Websocket is the websocket transport, configured by the server with
	// its implementation (gorilla), init function (auth) and keep-alives.
	// NewHandler marks every websocket operation so that subscriptions know
	// they can stream.
	Websocket transport.Websocket
	// Stopping, when closed, makes mutations answer UNAVAILABLE: a process
	// in its shutdown grace period takes no new work (queries and
	// subscriptions go on).
	Stopping <-chan struct{}
	// Timeout is the time budget of one query or mutation (0: none).
	Timeout time.Duration
}

// NewHandler builds the GraphQL HTTP handler with the transports and
// extensions chosen here (not handler.NewDefaultServer's): websocket, GET,
// POST; a parsed-query LRU cache, automatic persisted queries, depth and
// complexity limits, optional introspection, and the domain error presenter.
func NewHandler(o HandlerOptions) *handler.Server {
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	if o.Resolver.Log == nil {
		o.Resolver.Log = log
	}
	srv := handler.New(NewSchema(o.Resolver))

	ws := o.Websocket
	userInit := ws.InitFunc
	ws.InitFunc = func(ctx context.Context, p transport.InitPayload) (context.Context, *transport.InitPayload, error) {
		ctx = withWebsocket(ctx)
		if userInit != nil {
			return userInit(ctx, p)
		}
		return ctx, nil, nil
	}
	if ws.KeepAlivePingInterval == 0 {
		ws.KeepAlivePingInterval = 10 * time.Second
	}
	if ws.InitTimeout == 0 {
		ws.InitTimeout = 10 * time.Second
	}
	srv.AddTransport(ws)
	srv.AddTransport(transport.Options{})
	srv.AddTransport(transport.GET{})
	srv.AddTransport(transport.POST{})

	srv.SetQueryCache(lru.New[*ast.QueryDocument](queryCacheSize))
	srv.SetErrorPresenter(ErrorPresenter(log))
	srv.SetRecoverFunc(Recover(log))
	if o.Introspection {
		srv.Use(extension.Introspection{})
	} else {
		srv.Use(introspectionOff{})
	}
	apq := o.APQCacheSize
	if apq <= 0 {
		apq = DefaultAPQCacheSize
	}
	srv.Use(extension.AutomaticPersistedQuery{Cache: lru.New[string](apq)})
	// After APQ (which fills in the query), before gqlgen's validation and
	// complexity walks, which the selection limit bounds.
	selections := o.MaxSelections
	if selections <= 0 {
		selections = DefaultMaxSelections
	}
	repeats := o.MaxRepeats
	if repeats <= 0 {
		repeats = DefaultMaxRepeats
	}
	srv.Use(SelectionLimit{Max: selections, MaxRepeats: repeats, MaxQueryBytes: DefaultMaxQueryBytes})
	complexity := o.MaxComplexity
	if complexity <= 0 {
		complexity = DefaultMaxComplexity
	}
	srv.Use(extension.FixedComplexityLimit(complexity))
	depth := o.MaxDepth
	if depth <= 0 {
		depth = DefaultMaxDepth
	}
	srv.Use(DepthLimit{Max: depth})
	srv.Use(memoExtension{})
	if o.Stopping != nil {
		srv.AroundOperations(refuseMutationsWhenStopping(o.Stopping))
	}
	if o.Timeout > 0 {
		srv.AroundResponses(TimeBudget(o.Timeout))
	}
	return srv
}

// TimeBudget bounds the execution of a query or mutation to d: its
// resolvers run with a context that ends after d, and a response produced
// after that carries an error with extensions code TIMEOUT. Subscriptions
// run as long as their client listens and are not bounded. (Validation,
// before execution, is bounded by SelectionLimit and DepthLimit.)
func TimeBudget(d time.Duration) graphql.ResponseMiddleware {
	return func(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
		if !graphql.HasOperationContext(ctx) {
			return next(ctx) // an error answer (a body that does not parse)
		}
		oc := graphql.GetOperationContext(ctx)
		if oc == nil || oc.Operation == nil || oc.Operation.Operation == ast.Subscription {
			return next(ctx)
		}
		bctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		resp := next(bctx)
		if resp != nil && errors.Is(bctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
			resp.Errors = append(resp.Errors, &gqlerror.Error{
				Message:    fmt.Sprintf("the operation took longer than its time budget of %s (server.graphql_timeout)", d),
				Extensions: map[string]any{"code": string(scheduler.CodeTimeout)},
			})
		}
		return resp
	}
}

// refuseMutationsWhenStopping answers mutations with UNAVAILABLE once
// stopping is closed, so clients retry them on another instance.
func refuseMutationsWhenStopping(stopping <-chan struct{}) graphql.OperationMiddleware {
	return func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		select {
		case <-stopping:
			oc := graphql.GetOperationContext(ctx)
			if oc.Operation != nil && oc.Operation.Operation == ast.Mutation {
				return graphql.OneShot(&graphql.Response{Errors: gqlerror.List{{
					Message: "server is shutting down and takes no new work; retry on another instance",
					Extensions: map[string]any{
						"code": string(scheduler.CodeUnavailable), "retryAfter": 5,
					},
				}}})
			}
		default:
		}
		return next(ctx)
	}
}

// DepthLimit refuses operations whose selections nest deeper than Max
// (fragments expanded, introspection fields not counted) with extensions
// code DEPTH_LIMIT_EXCEEDED, before anything runs.
type DepthLimit struct{ Max int }

var (
	_ graphql.HandlerExtension        = DepthLimit{}
	_ graphql.OperationContextMutator = DepthLimit{}
)

func (DepthLimit) ExtensionName() string                   { return "DepthLimit" }
func (DepthLimit) Validate(graphql.ExecutableSchema) error { return nil }

func (d DepthLimit) MutateOperationContext(_ context.Context, rc *graphql.OperationContext) *gqlerror.Error {
	if rc.Operation == nil {
		return nil
	}
	if got := selectionDepth(rc.Operation.SelectionSet, 0, d.Max); got > d.Max {
		err := gqlerror.Errorf("operation is nested %d levels deep, more than the limit of %d", got, d.Max)
		err.Extensions = map[string]any{"code": "DEPTH_LIMIT_EXCEEDED"}
		return err
	}
	return nil
}

// selectionDepth returns the depth of set below depth, stopping early once
// past limit (so cyclic or huge documents cost little).
func selectionDepth(set ast.SelectionSet, depth, limit int) int {
	if depth > limit {
		return depth
	}
	deepest := depth
	for _, sel := range set {
		var d int
		switch s := sel.(type) {
		case *ast.Field:
			if len(s.Name) > 1 && s.Name[:2] == "__" {
				continue
			}
			d = depth + 1
			if len(s.SelectionSet) > 0 {
				d = selectionDepth(s.SelectionSet, depth+1, limit)
			}
		case *ast.InlineFragment:
			d = selectionDepth(s.SelectionSet, depth, limit)
		case *ast.FragmentSpread:
			if s.Definition == nil {
				continue
			}
			d = selectionDepth(s.Definition.SelectionSet, depth, limit)
		default:
			panic(fmt.Sprintf("unknown selection %T", sel))
		}
		deepest = max(deepest, d)
	}
	return deepest
}

// introspectionOff refuses operations that ask for __schema or __type
// while introspection is disabled, before they run, with extensions code
// INTROSPECTION_DISABLED (gqlgen's own refusal is a resolver error that
// reads as an internal one). __typename stays allowed.
type introspectionOff struct{}

var (
	_ graphql.HandlerExtension        = introspectionOff{}
	_ graphql.OperationContextMutator = introspectionOff{}
)

func (introspectionOff) ExtensionName() string                   { return "IntrospectionOff" }
func (introspectionOff) Validate(graphql.ExecutableSchema) error { return nil }

func (introspectionOff) MutateOperationContext(_ context.Context, rc *graphql.OperationContext) *gqlerror.Error {
	if rc.Operation == nil || !asksIntrospection(rc.Operation.SelectionSet, map[string]bool{}) {
		return nil
	}
	err := gqlerror.Errorf("introspection is disabled on this server (server.introspection)")
	err.Extensions = map[string]any{"code": "INTROSPECTION_DISABLED"}
	return err
}

// asksIntrospection looks for __schema and __type among the root fields
// (through fragments, each visited once).
func asksIntrospection(set ast.SelectionSet, seen map[string]bool) bool {
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if s.Name == "__schema" || s.Name == "__type" {
				return true
			}
		case *ast.InlineFragment:
			if asksIntrospection(s.SelectionSet, seen) {
				return true
			}
		case *ast.FragmentSpread:
			if s.Definition != nil && !seen[s.Name] {
				seen[s.Name] = true
				if asksIntrospection(s.Definition.SelectionSet, seen) {
					return true
				}
			}
		}
	}
	return false
}
