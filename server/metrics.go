package server

import "errors"

func init() { mounts = append(mounts, mountMetrics) }

// mountMetrics serves Prometheus metrics at /metrics, for admin keys when
// auth is on (a scraper sends Authorization: Bearer, see docs/deploy.md).
func mountMetrics(s *Server) error {
	if s.app.Metrics == nil {
		return errors.New("metrics: the app has no registry (app.New sets one)")
	}
	s.mux.Handle("GET /metrics", s.adminOnly(s.app.Metrics.Handler()))
	return nil
}
