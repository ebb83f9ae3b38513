package server

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/hibiken/asynqmon"

	"github.com/llmsched/llm-scheduler/internal/scheduler"
)

func init() { mounts = append(mounts, mountMonitoring) }

// monitoringPath is where asynqmon, asynq's queue inspector, is served.
const monitoringPath = "/monitoring"

// mountMonitoring serves asynqmon's UI and API under /monitoring, for
// admins only when auth is on. It is read-only: the database is the system
// of record, so deleting or running a queued task from asynqmon would make
// Redis and the database disagree; cancel and retry go through the API.
func mountMonitoring(s *Server) error {
	mon := asynqmon.New(asynqmon.Options{
		RootPath:     monitoringPath,
		RedisConnOpt: s.app.Broker.Opt,
		ReadOnly:     true,
	})
	// asynqmon holds its own Redis client; release it when the process
	// stops.
	s.app.OnStopping(func() { _ = mon.Close() })
	// adminOnly also takes the API key as a Basic password, so a browser
	// can open the UI when auth is on.
	h := s.adminOnly(s.redisUp(mon))
	s.mux.Handle(mon.RootPath()+"/", h)
	s.mux.Handle(mon.RootPath(), h)
	return nil
}

// redisUp answers asynqmon's API calls with 503 UNAVAILABLE and
// Retry-After while Redis does not answer a ping (asynqmon itself answers
// a bare 500 with the driver's error), like every other outage the API
// reports. The UI's static files need no Redis.
func (s *Server) redisUp(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, monitoringPath+"/api/") {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			err := s.app.Broker.Ping(ctx)
			cancel()
			if err != nil {
				writeError(w, r, s.log, scheduler.Unavailable("redis", err))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
