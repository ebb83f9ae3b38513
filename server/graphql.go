package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/99designs/gqlgen/graphql/playground"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/llmsched/llm-scheduler/graph"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/scheduler"
)

// GraphQL on /graphql (POST, GET, websocket with graphql-transport-ws and
// legacy graphql-ws) and the playground on /playground. Resolvers live in
// graph/; this file wires them to the HTTP server: authentication, the
// websocket origin check, and closing websockets on shutdown.

func init() { mounts = append(mounts, mountGraphQL) }

// websocketWriteTimeout bounds one write to a websocket client.
const websocketWriteTimeout = 10 * time.Second

func mountGraphQL(s *Server) error {
	cfg := s.app.Config
	origins := cfg.Server.CORSOrigins
	checkOrigin := func(r *http.Request) bool { return originAllowed(r, origins) }
	ws := newGorillaWebsocket(checkOrigin, websocketWriteTimeout)
	h := graph.NewHandler(graph.HandlerOptions{
		Resolver: &graph.Resolver{Svc: s.svc, DB: s.app.Store.Client, Bus: s.app.Bus, Access: graphAccess{}, Log: s.log, Metrics: s.app.Metrics},
		Log:      s.log,
		// Introspection follows server.introspection (off in production by default).
		Introspection: cfg.IntrospectionEnabled(),
		Stopping:      s.app.Stopping(),
		Timeout:       cfg.Server.GraphQLTimeout.D(),
		Websocket: transport.Websocket{
			Implementation: ws,
			// A websocket message is bounded like an HTTP body.
			PayloadReadLimit: &cfg.Server.MaxBodyBytes,
			InitFunc:         s.websocketInit,
			// graphql-ws (legacy) keep-alive messages, and graphql-transport-ws
			// pings that a client must answer within two intervals.
			KeepAlivePingInterval: 10 * time.Second,
			PingPongInterval:      15 * time.Second,
			ErrorFunc: func(ctx context.Context, err error) {
				s.log.Debug("graphql websocket", "err", err)
			},
		},
	})
	h.AroundOperations(s.recheckWebsocketKey)
	s.mux.Handle("/graphql", s.graphqlAuth(h, checkOrigin))
	s.mux.Handle("GET /playground", playground.Handler("LLM Scheduler GraphQL", "/graphql"))
	s.app.OnStopping(ws.shutdown)
	if s.auth.enabled {
		stopping := s.app.Stopping()
		s.app.Go(func() { s.watchKeys(ws, websocketKeyRecheck, stopping) })
	}
	return nil
}

type authErrKey struct{}

type bearerKey struct{}

// graphqlAuth authenticates HTTP operations from the Authorization header.
// A missing or bad key does not fail the request here: each field that
// needs a permission answers UNAUTHENTICATED (systemHealth needs none). A
// websocket authenticates in connection_init (websocketInit); its upgrade
// must come from an allowed origin.
func (s *Server) graphqlAuth(next http.Handler, checkOrigin func(*http.Request) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			if !checkOrigin(r) {
				writeError(w, r, s.log, &scheduler.Error{Code: scheduler.CodeForbidden,
					Message: "websocket origin " + r.Header.Get("Origin") + " is not allowed (server.cors_origins)"})
				return
			}
			ctx = context.WithValue(ctx, bearerKey{}, bearer(r))
			ctx = context.WithValue(ctx, wsSessionKey{}, &wsSession{})
			next.ServeHTTP(w, r.WithContext(ctx))
			return
		}
		if r.Method == http.MethodPost && r.Body != nil {
			// gqlgen reads the body itself and, past server.max_body_bytes,
			// answers 200 with an INTERNAL error: read it here to answer
			// 413 PAYLOAD_TOO_LARGE as the REST API does.
			raw, err := io.ReadAll(r.Body)
			if err != nil {
				writeGraphQLError(w, err)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(raw))
		}
		p, err := s.auth.Authenticate(ctx, bearer(r))
		if err != nil {
			ctx = context.WithValue(ctx, authErrKey{}, err)
		} else {
			ctx = WithPrincipal(ctx, p)
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// writeGraphQLError answers a request body that could not be read with a
// GraphQL error response: 413 PAYLOAD_TOO_LARGE over server.max_body_bytes,
// else 400 BAD_USER_INPUT.
func writeGraphQLError(w http.ResponseWriter, err error) {
	status, code := http.StatusBadRequest, scheduler.CodeInvalid
	msg := "request body could not be read: " + err.Error()
	var mbe *http.MaxBytesError
	if errors.Is(err, os.ErrDeadlineExceeded) {
		status, code, msg = http.StatusRequestTimeout, scheduler.CodeTimeout, errBodyTimeout.Message
	}
	if errors.As(err, &mbe) {
		status, code = http.StatusRequestEntityTooLarge, scheduler.CodeTooLarge
		msg = fmt.Sprintf("request body is over the limit of %d bytes (server.max_body_bytes)", mbe.Limit)
	}
	writeJSON(w, status, graphql.Response{Errors: gqlerror.List{{Message: msg, Extensions: map[string]any{"code": string(code)}}}})
}

// websocketInit authenticates a websocket from its connection_init
// payload: {"Authorization": "Bearer <key>"} or {"authToken": "<key>"}
// (an Authorization header on the upgrade request works too). With auth on,
// a connection without a valid key is refused with close code 4403.
func (s *Server) websocketInit(ctx context.Context, payload transport.InitPayload) (context.Context, *transport.InitPayload, error) {
	token := payload.GetString("authToken")
	if h := payload.Authorization(); token == "" && h != "" {
		token = h
		if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
			token = strings.TrimSpace(h[7:])
		}
	}
	if token == "" {
		token, _ = ctx.Value(bearerKey{}).(string)
	}
	p, err := s.auth.Authenticate(ctx, token)
	if err != nil {
		return transport.WithWebsocketCloseCode(ctx, closeKeyRevoked), nil, err
	}
	if !p.Anonymous {
		sess, _ := ctx.Value(wsSessionKey{}).(*wsSession)
		sess.bindKey(p.KeyID)
	}
	return WithPrincipal(ctx, p), nil, nil
}

// originAllowed accepts requests without an Origin (non-browser clients),
// same-origin requests, and the origins in server.cors_origins.
func originAllowed(r *http.Request, allowed []string) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	if slices.Contains(allowed, o) {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

// graphAccess applies the REST layer's roles and permissions to GraphQL.
type graphAccess struct{}

func (graphAccess) Allow(ctx context.Context, perm domain.Permission) error {
	p := PrincipalFrom(ctx)
	if p == nil {
		if err, ok := ctx.Value(authErrKey{}).(error); ok {
			return err
		}
		return &scheduler.Error{Code: scheduler.CodeUnauthenticated, Message: "an API key is required: send Authorization: Bearer <key>"}
	}
	if !p.Can(perm) {
		return forbidden(p.Role, perm)
	}
	return nil
}

func (graphAccess) Owner(ctx context.Context) *int     { return ownerFilter(ctx) }
func (graphAccess) Submitter(ctx context.Context) *int { return callerKeyID(ctx) }
