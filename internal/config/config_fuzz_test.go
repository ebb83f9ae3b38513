package config_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/llmsched/llm-scheduler/internal/config"
)

// envKeys are the environment variables the loader reads.
var envKeys = []string{"APP_ENV", "SERVER_HOST", "SERVER_PORT", "CORS_ORIGINS", "DB_DRIVER", "DB_HOST", "DB_PORT",
	"DB_USER", "DB_PASSWORD", "DB_NAME", "DB_SQLITE_PATH", "REDIS_HOST", "REDIS_PORT", "REDIS_DB", "REDIS_PASSWORD",
	"REDIS_KEY_PREFIX", "REDIS_SENTINEL_MASTER", "REDIS_SENTINEL_ADDRS", "REDIS_CLUSTER_ADDRS", "QUEUE_MAX_QUEUE_SIZE",
	"QUEUE_MAX_RETRIES", "QUEUE_STRATEGY", "QUEUE_TASK_TIMEOUT", "QUEUE_RETRY_DELAY", "QUEUE_POLL_INTERVAL",
	"SHUTDOWN_GRACE", "WORKER_MAX_WORKERS", "WORKER_DEFAULT_WORKERS", "AUTH_ENABLED", "ENCRYPTION_KEY", "LOG_LEVEL", "LOG_FORMAT"}

// FuzzLoad loads arbitrary YAML with one arbitrary environment variable.
// It must never panic, and a configuration it accepts must be one that
// validates: durations and sizes in range, whatever the text said.
func FuzzLoad(f *testing.F) {
	f.Add("queue: {task_timeout: 300s, lease_ttl: 30s}\n", uint8(0), "")
	f.Add("server: {shutdown_grace: NaN}\n", uint8(25), "1e300")
	f.Add("queue: {poll_interval: Inf, lease_ttl: 1e30, reconcile_interval: -1}\n", uint8(24), "NaN")
	f.Add("queue: {retry_delay: 9223372036s, max_retry_delay: 1h}\n", uint8(23), "-5s")
	f.Add("redis: {sentinel_master: m, sentinel_addrs: []}\n", uint8(17), "m")
	f.Add("database: {driver: mysql, port: 70000}\n", uint8(6), "x")
	f.Add("app: [1, 2]\n", uint8(2), "99999999999999999999")
	f.Add("queue:\n  weights: {high: -1}\n  strategy: weighted\n", uint8(22), "weighted")
	f.Add("&a [*a]", uint8(31), "json")
	f.Fuzz(func(t *testing.T, yaml string, key uint8, val string) {
		path := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		env := map[string]string{envKeys[int(key)%len(envKeys)]: val}
		getenv := func(k string) string { return env[k] }
		for _, p := range []string{path, ""} {
			c, err := config.Load(p, getenv)
			if err != nil {
				if err.Error() == "" {
					t.Fatalf("empty error message")
				}
				continue
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("accepted config fails validation on a second look: %v", err)
			}
			q := c.Queue
			if q.TaskTimeout <= 0 || q.LeaseTTL.D() <= 0 || q.PollInterval <= 0 || q.ReconcileInterval <= 0 ||
				q.RetryDelay < 0 || c.Server.ShutdownGrace < 0 {
				t.Fatalf("accepted config with a non-positive duration: %+v, grace %s", q, c.Server.ShutdownGrace)
			}
		}
	})
}
