package server

import (
	"net/http"
	"strings"

	"github.com/llmsched/llm-scheduler/config"
	"github.com/llmsched/llm-scheduler/domain"
)

func init() {
	mounts = append(mounts, func(s *Server) error {
		s.mux.Handle("GET /api/v1/system/config", s.require(domain.PermAdmin, s.systemConfig))
		return nil
	})
}

// configView is the running configuration as the dashboard's system page
// shows it. Secrets never leave the process: the config fields that hold
// them are tagged json:"-", and Secrets only says which are set: "****",
// never a part of the value.
type configView struct {
	config.Config
	Secrets map[string]string `json:"secrets"`
}

// systemConfig answers GET /api/v1/system/config.
func (s *Server) systemConfig(w http.ResponseWriter, r *http.Request) {
	c := *s.app.Config
	secrets := map[string]string{}
	for name, v := range map[string]string{
		"database.password":       c.Database.Password,
		"redis.password":          c.Redis.Password,
		"redis.sentinel_password": c.Redis.SentinelPassword,
		"auth.encryption_key":     c.Auth.EncryptionKey,
	} {
		if v != "" {
			secrets[name] = "****"
		}
	}
	if n := len(c.Auth.PreviousEncryptionKeys); n > 0 {
		secrets["auth.previous_encryption_keys"] = strings.Repeat("****,", n-1) + "****"
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": configView{Config: c, Secrets: secrets}})
}
