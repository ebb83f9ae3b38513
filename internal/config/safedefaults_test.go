package config_test

import (
	"strings"
	"testing"

	"github.com/llmsched/llm-scheduler/internal/config"
)

// While auth is off the scheduler listens on loopback only, unless
// server.host says otherwise; with auth on it listens everywhere.
func TestListenHostFollowsAuth(t *testing.T) {
	for _, tc := range []struct {
		desc string
		env  map[string]string
		want string
	}{
		{"embedded default, auth off", nil, "127.0.0.1"},
		{"auth on", map[string]string{"AUTH_ENABLED": "true"}, "0.0.0.0"},
		{"production", map[string]string{"APP_ENV": "production", "DB_HOST": "db"}, "0.0.0.0"},
		{"server.host opts in", map[string]string{"SERVER_HOST": "0.0.0.0"}, "0.0.0.0"},
		{"server.host picks an address", map[string]string{"SERVER_HOST": "10.0.0.5", "AUTH_ENABLED": "true"}, "10.0.0.5"},
	} {
		c, err := config.Load("", env(tc.env))
		if err != nil {
			t.Fatalf("%s: %v", tc.desc, err)
		}
		if c.Server.Host != tc.want {
			t.Errorf("%s: server.host = %q, want %q", tc.desc, c.Server.Host, tc.want)
		}
	}
}

func TestUnsafeSettingsAreRefused(t *testing.T) {
	for _, tc := range []struct {
		desc string
		env  map[string]string
		want string
	}{
		{"production with auth off", map[string]string{"APP_ENV": "production", "DB_HOST": "db", "AUTH_ENABLED": "false"}, "auth.enabled must not be false when app.env is production"},
		{"wildcard origin", map[string]string{"CORS_ORIGINS": "*"}, `server.cors_origins must list exact origins like https://dashboard.example.com, got "*"`},
		{"null origin", map[string]string{"CORS_ORIGINS": "https://ok.example,null"}, `got "null"`},
		{"origin with a path", map[string]string{"CORS_ORIGINS": "https://ok.example/app"}, `got "https://ok.example/app"`},
		{"origin without scheme", map[string]string{"CORS_ORIGINS": "ok.example"}, `got "ok.example"`},
		{"bad allow_hosts entry", map[string]string{"PROVIDERS_ALLOW_HOSTS": "10.0.0.0/99"}, `providers.allow_hosts: "10.0.0.0/99"`},
	} {
		_, err := config.Load("", env(tc.env))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.desc, err, tc.want)
		}
	}
	if _, err := config.Load("", env(map[string]string{"CORS_ORIGINS": "http://localhost:3000,https://dash.example.com"})); err != nil {
		t.Fatalf("exact origins refused: %v", err)
	}
}

func TestOutboundPolicyKnowsOwnAddress(t *testing.T) {
	c, err := config.Load("", env(map[string]string{"SERVER_PORT": "8181", "PROVIDERS_ALLOW_HOSTS": "169.254.169.254"}))
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Outbound()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Check("http://localhost:8181/metrics"); err == nil {
		t.Fatal("own address allowed")
	}
	if err := p.Check("http://169.254.169.254/"); err != nil {
		t.Fatalf("allowed host refused: %v", err)
	}
}
