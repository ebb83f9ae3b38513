package server

import (
	"github.com/hibiken/asynqmon"
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
	go func() {
		<-s.app.Stopping()
		_ = mon.Close()
	}()
	// adminOnly also takes the API key as a Basic password, so a browser
	// can open the UI when auth is on.
	h := s.adminOnly(mon)
	s.mux.Handle(mon.RootPath()+"/", h)
	s.mux.Handle(mon.RootPath(), h)
	return nil
}
