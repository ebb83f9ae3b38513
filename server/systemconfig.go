package server

import (
	"net/http"
	"strings"

	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/internal/domain"
)

func init() {
	mounts = append(mounts, func(s *Server) error {
		s.mux.Handle("GET /api/v1/system/config", s.require(domain.PermAdmin, s.systemConfig))
		return nil
	})
}

// configView is the running configuration as the dashboard's system page
// shows it. Secrets never leave the process: the config fields that hold
// them are tagged json:"-", and Secrets only says which are set
// (config.Config.Secrets lists them): "****", never a part of the value.
type configView struct {
	config.Config
	Secrets map[string]string `json:"secrets"`
}

// systemConfig answers GET /api/v1/system/config.
func (s *Server) systemConfig(w http.ResponseWriter, r *http.Request) {
	c := *s.app.Config
	secrets := map[string]string{}
	for _, sec := range c.Secrets() {
		if n := len(sec.Values); n > 0 {
			secrets[sec.Key] = strings.Repeat("****,", n-1) + "****"
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": configView{Config: c, Secrets: secrets}})
}
