package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/llmsched/llm-scheduler/internal/app"
	"github.com/llmsched/llm-scheduler/internal/metrics"
	"github.com/llmsched/llm-scheduler/internal/requestid"
	"github.com/llmsched/llm-scheduler/internal/scheduler"
)

// Server is the HTTP side of an api process.
type Server struct {
	app  *app.App
	svc  *scheduler.Service
	log  *slog.Logger
	auth *Authenticator
	mux  *http.ServeMux
}

// New builds the HTTP handler of an api process. It matches app.HandlerFunc.
func New(a *app.App) (http.Handler, error) {
	s := &Server{
		app: a, svc: a.Service, log: a.Log, mux: http.NewServeMux(),
		auth: &Authenticator{db: a.Store.Client, enabled: a.Config.AuthEnabled(), log: a.Log},
	}
	(&rest{svc: s.svc, log: s.log}).routes(s.mux, s.require)
	for _, mount := range mounts {
		if err := mount(s); err != nil {
			return nil, err
		}
	}
	return s.middleware(s.intake(s.mux)), nil
}

// mounts are the other parts of the HTTP surface (GraphQL, dashboard,
// asynqmon, metrics); each file registers its own in init.
var mounts []func(s *Server) error

// RequestID returns the request's id ("" outside a request). Loggers built
// by app carry it into every record logged with the request's context.
func RequestID(ctx context.Context) string { return requestid.From(ctx) }

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// statusRecorder remembers the status for the access log, and carries the
// process's metrics to writeError (a plain function that handlers and
// middleware call with only a logger) so that a refused submission is
// counted in this process's registry.
type statusRecorder struct {
	http.ResponseWriter
	status  int
	metrics *metrics.Metrics
}

// recorderOf finds the statusRecorder under w (nil outside Server's
// middleware).
func recorderOf(w http.ResponseWriter) *statusRecorder {
	for {
		switch x := w.(type) {
		case *statusRecorder:
			return x
		case interface{ Unwrap() http.ResponseWriter }:
			w = x.Unwrap()
		default:
			return nil
		}
	}
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Flush lets streaming responses (SSE) through the recorder.
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *Server) middleware(next http.Handler) http.Handler {
	maxBody := s.app.Config.Server.MaxBodyBytes
	origins := s.app.Config.Server.CORSOrigins
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-ID")
		if id == "" || len(id) > 64 {
			id = newRequestID()
		}
		w.Header().Set("X-Request-ID", id)
		ctx := requestid.With(r.Context(), id)
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		if cors(w, r, origins) {
			return // a preflight from an allowed origin (cors.go)
		}
		if status, err := csrf(r, origins); err != nil {
			writeJSON(w, status, errorBody{Error: errorDetail{Code: err.Code, Message: err.Message}})
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		}
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK, metrics: s.app.Metrics}
		defer func() {
			if v := recover(); v != nil {
				if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
					panic(v)
				}
				s.log.Error("panic in handler", "panic", fmt.Sprint(v), "stack", string(debug.Stack()), "request_id", id)
				writeError(rec, r, s.log, fmt.Errorf("panic: %v", v))
			}
			s.log.Debug("http request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
				"duration_ms", time.Since(start).Milliseconds(), "request_id", id)
		}()
		next.ServeHTTP(rec, r.WithContext(ctx))
	})
}

// errBodyTimeout answers a request whose body did not arrive within
// server.read_timeout (http.Server.ReadTimeout: the connection's read
// deadline, which net/http clears once the body has been read, so that
// streamed answers and websockets are not cut by it).
var errBodyTimeout = &scheduler.Error{Code: scheduler.CodeTimeout,
	Message: "the request was not received within server.read_timeout"}
