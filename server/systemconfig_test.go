package server_test

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/internal/config"
)

func TestSystemConfigMasksSecrets(t *testing.T) {
	// The sentinel password is unused without a sentinel master, so it can
	// be set on every backend; the database password only where SQLite
	// ignores it.
	const sentinelPass = "Xq81vT9pLmN3-must-not-leak"
	key := base64.StdEncoding.EncodeToString([]byte("enc-key-Zr55-must-not-leak-32byt"))
	e := apptest.New(t, func(c *config.Config) {
		if apptest.Backend() == "embedded" {
			c.Database.Password = sentinelPass
		}
		c.Redis.SentinelPassword = sentinelPass
		c.Auth.EncryptionKey = key
		c.Webhooks.Secret = sentinelPass
	})
	code, _, body := get(t, e, "GET", "/api/v1/system/config")
	if code != http.StatusOK {
		t.Fatalf("GET /api/v1/system/config = %d %s", code, body)
	}
	for _, secret := range []string{sentinelPass, key, sentinelPass[:8], key[:8]} {
		if strings.Contains(body, secret) {
			t.Fatalf("the config view leaks %q:\n%s", secret, body)
		}
	}
	var out struct {
		Data struct {
			App struct {
				Name string `json:"name"`
			} `json:"app"`
			Queue struct {
				MaxQueueSize int `json:"max_queue_size"`
			} `json:"queue"`
			Secrets map[string]string `json:"secrets"`
		} `json:"data"`
	}
	e.Do("GET", "/api/v1/system/config", nil, &out)
	if out.Data.App.Name == "" || out.Data.Queue.MaxQueueSize <= 0 {
		t.Errorf("config view misses settings: %+v", out.Data)
	}
	for _, k := range []string{"redis.sentinel_password", "auth.encryption_key", "webhooks.secret"} {
		if out.Data.Secrets[k] != "****" {
			t.Errorf("secrets = %v, want %s shown as ****", out.Data.Secrets, k)
		}
	}
	if _, ok := out.Data.Secrets["redis.password"]; ok {
		t.Errorf("an unset secret is listed: %v", out.Data.Secrets)
	}
}
