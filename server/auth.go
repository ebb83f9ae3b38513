package server

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/ent/apikey"
	"github.com/llmsched/llm-scheduler/internal/apikeys"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/scheduler"
)

// Principal is who makes a request.
type Principal struct {
	KeyID int
	Name  string
	Role  domain.Role
	// Anonymous is true when auth is off (every request acts as admin).
	Anonymous bool
}

// Can reports whether the principal holds perm (domain's permissions
// table).
func (p *Principal) Can(perm domain.Permission) bool { return p.Role.Can(perm) }

// forbidden is the error of a caller whose role lacks perm.
func forbidden(role domain.Role, perm domain.Permission) error {
	return &scheduler.Error{Code: scheduler.CodeForbidden,
		Message: "role " + string(role) + " may not do this (needs " + string(perm) + ")"}
}

type principalKey struct{}

// WithPrincipal stores the caller in ctx.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the caller, nil when none was authenticated.
func PrincipalFrom(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// callerKeyID is the key that submits a task, nil when auth is off.
func callerKeyID(ctx context.Context) *int {
	if p := PrincipalFrom(ctx); p != nil && !p.Anonymous {
		id := p.KeyID
		return &id
	}
	return nil
}

// ownerFilter limits a submitter to their own tasks.
func ownerFilter(ctx context.Context) *int {
	if p := PrincipalFrom(ctx); p != nil && p.Role == domain.RoleSubmitter {
		return callerKeyID(ctx)
	}
	return nil
}

// checkOwner refuses a submitter another key's task (as not found, so ids
// of other users' tasks do not leak).
func checkOwner(ctx context.Context, t *ent.Task) error {
	if id := ownerFilter(ctx); id != nil && (t.APIKeyID == nil || *t.APIKeyID != *id) {
		return scheduler.NotFound("task", t.ID)
	}
	return nil
}

// Authenticator resolves API keys.
type Authenticator struct {
	db      *ent.Client
	enabled bool
	log     *slog.Logger
}

// Authenticate resolves a bearer token. With auth off, everyone is an
// anonymous admin.
func (a *Authenticator) Authenticate(ctx context.Context, token string) (*Principal, error) {
	if !a.enabled {
		return &Principal{Role: domain.RoleAdmin, Anonymous: true, Name: "anonymous"}, nil
	}
	if token == "" {
		return nil, &scheduler.Error{Code: scheduler.CodeUnauthenticated, Message: "an API key is required: send Authorization: Bearer <key>"}
	}
	k, err := a.db.APIKey.Query().Where(apikey.Hash(apikeys.Hash(token))).Only(ctx)
	if ent.IsNotFound(err) {
		return nil, &scheduler.Error{Code: scheduler.CodeUnauthenticated, Message: "the API key is not valid"}
	}
	if err != nil {
		return nil, scheduler.Unavailable("database", err)
	}
	if k.RevokedAt != nil {
		return nil, &scheduler.Error{Code: scheduler.CodeUnauthenticated, Message: "the API key was revoked"}
	}
	if k.LastUsedAt == nil || time.Since(*k.LastUsedAt) > time.Minute {
		// last_used_at is informational: a failed write does not refuse the request.
		if err := a.db.APIKey.UpdateOneID(k.ID).SetLastUsedAt(time.Now()).Exec(ctx); err != nil && a.log != nil {
			a.log.WarnContext(ctx, "record api key use", "key_id", k.ID, "err", err)
		}
	}
	return &Principal{KeyID: k.ID, Name: k.Name, Role: k.Role}, nil
}

// bearer extracts the token of an Authorization: Bearer header.
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// require wraps a handler with authentication and a permission check.
func (s *Server) require(perm domain.Permission, f http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.auth.Authenticate(r.Context(), bearer(r))
		if err != nil {
			writeError(w, r, s.log, err)
			return
		}
		if !p.Can(perm) {
			writeError(w, r, s.log, forbidden(p.Role, perm))
			return
		}
		f(w, r.WithContext(WithPrincipal(r.Context(), p)))
	})
}

// adminOnly guards the operator surfaces (asynqmon at /monitoring,
// /metrics) with the admin role when auth is on. Besides Authorization:
// Bearer it accepts HTTP Basic with the API key as password (any user
// name), so a browser can open asynqmon: a refusal asks for credentials
// with WWW-Authenticate. Browsers replay Basic credentials on cross-site
// requests, so a state-changing request that carries them must come from
// this origin or an allowed one.
func (s *Server) adminOnly(h http.Handler) http.Handler {
	origins := s.app.Config.Server.CORSOrigins
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := bearer(r)
		basic := false
		if token == "" {
			if _, pw, ok := r.BasicAuth(); ok {
				token, basic = pw, true
			}
		}
		p, err := s.auth.Authenticate(r.Context(), token)
		if err != nil {
			if scheduler.CodeOf(err) == scheduler.CodeUnauthenticated {
				w.Header().Set("WWW-Authenticate", `Basic realm="llm-scheduler admin", charset="UTF-8"`)
			}
			writeError(w, r, s.log, err)
			return
		}
		if !p.Can(domain.PermAdmin) {
			writeError(w, r, s.log, forbidden(p.Role, domain.PermAdmin))
			return
		}
		if basic && !safeMethod(r.Method) && !sameOrAllowedOrigin(r, origins) {
			writeError(w, r, s.log, &scheduler.Error{Code: scheduler.CodeForbidden,
				Message: "cross-origin request refused"})
			return
		}
		h.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
	})
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// sameOrAllowedOrigin reports whether a request's Origin (or, without one,
// its Referer) is this host or in the allowlist. A request with neither is
// not from a browser page and passes.
func sameOrAllowedOrigin(r *http.Request, allowed []string) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		o = r.Header.Get("Referer")
	}
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil {
		return false
	}
	if u.Host == r.Host {
		return true
	}
	return slices.Contains(allowed, u.Scheme+"://"+u.Host)
}
