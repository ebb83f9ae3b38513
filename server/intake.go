package server

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/llmsched/llm-scheduler/internal/scheduler"
)

// errStopping is what a client that submits work to a stopping process is
// told: the request was not taken, and another api process (or this one,
// restarted) will take it.
var errStopping = &scheduler.Error{
	Code:       scheduler.CodeUnavailable,
	Message:    "server is shutting down and takes no new work; retry on another instance",
	RetryAfter: 5 * time.Second,
	Err:        errors.New("shutting down"),
}

// intake stops intake once shutdown began (app.Stopping): REST writes are
// refused with 503 UNAVAILABLE and Retry-After, while reads, and requests
// already running, go on. The health endpoint answers 503 too, so a load
// balancer stops sending traffic here during the grace period.
func (s *Server) intake(next http.Handler) http.Handler {
	stopping := s.app.Stopping()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stopping:
			if refusedWhileStopping(r) {
				writeError(w, r, s.log, errStopping)
				return
			}
		default:
		}
		next.ServeHTTP(w, r)
	})
}

func refusedWhileStopping(r *http.Request) bool {
	if !strings.HasPrefix(r.URL.Path, "/api/") {
		return false
	}
	if r.URL.Path == "/api/v1/system/health" {
		return true
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}
