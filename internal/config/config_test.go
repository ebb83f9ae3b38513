package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/llmsched/llm-scheduler/internal/config"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestEmbeddedDefaultWithoutConfiguration(t *testing.T) {
	c, err := config.Load("", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Embedded() || c.Database.Driver != "sqlite" || !c.Redis.Embedded {
		t.Fatalf("want the embedded default, got driver %q embedded redis %v", c.Database.Driver, c.Redis.Embedded)
	}
	if c.Server.Port != 8080 || c.Queue.MaxQueueSize != 10000 || c.Queue.TaskTimeout.D() != 300*time.Second ||
		c.Queue.MaxRetries != 3 || c.Queue.RetryDelay.D() != 60*time.Second || c.Worker.DefaultWorkers != 5 || c.Worker.MaxWorkers != 50 {
		t.Fatalf("SPEC defaults not applied: %+v", c)
	}
}

func TestEnvironmentSelectsMySQLAndRedis(t *testing.T) {
	c, err := config.Load("", env(map[string]string{
		"DB_HOST": "db.internal", "DB_PORT": "3307", "DB_USER": "u", "DB_PASSWORD": "p", "DB_NAME": "n",
		"REDIS_HOST": "cache", "REDIS_PORT": "6380", "REDIS_DB": "2", "REDIS_PASSWORD": "rp", "SERVER_PORT": "9090",
	}))
	if err != nil {
		t.Fatal(err)
	}
	d, r := c.Database, c.Redis
	if c.Embedded() || d.Driver != "mysql" || d.Host != "db.internal" || d.Port != 3307 || d.Username != "u" ||
		d.Password != "p" || d.Database != "n" || r.Embedded || r.Host != "cache" || r.Port != 6380 || r.DB != 2 ||
		r.Password != "rp" || c.Server.Port != 9090 {
		t.Fatalf("environment not applied: %+v", c)
	}
}

func TestFileThenEnvironment(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte("queue:\n  max_queue_size: 7\n  retry_delay: \"2s\"\nserver:\n  port: 1234\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(path, env(map[string]string{"SERVER_PORT": "4321"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Queue.MaxQueueSize != 7 || c.Queue.RetryDelay.D() != 2*time.Second || c.Server.Port != 4321 || c.Database.Driver != "mysql" {
		t.Fatalf("got %+v", c)
	}
}

func TestRepositoryConfigFileLoads(t *testing.T) {
	c, err := config.Load("../../config.yaml", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Database.Database != "llm_scheduler" || c.Database.Username != "llm_user" || c.Redis.Port != 6379 {
		t.Fatalf("config.yaml does not carry SPEC's values: %+v", c)
	}
}

func TestInvalidValuesNameTheKey(t *testing.T) {
	cases := []struct {
		desc, yaml string
		env        map[string]string
		want       string
	}{
		{desc: "negative retries", yaml: "queue:\n  max_retries: -1\n", want: "queue.max_retries must be between 0 and 100, got -1"},
		{desc: "bad driver", yaml: "database:\n  driver: oracle\n", want: "database.driver must be mysql or sqlite"},
		{desc: "bad duration", yaml: "queue:\n  task_timeout: soon\n", want: `"soon" is not a duration`},
		{desc: "unknown key", yaml: "queue:\n  max_queue: 3\n", want: "field max_queue not found"},
		{desc: "zero queue", yaml: "queue:\n  max_queue_size: 0\n", want: "queue.max_queue_size must be at least 1"},
		{desc: "port env", env: map[string]string{"SERVER_PORT": "eighty"}, want: "SERVER_PORT must be an integer"},
		{desc: "strategy", yaml: "queue:\n  strategy: random\n", want: "queue.strategy must be strict or weighted"},
		{desc: "workers", yaml: "worker:\n  default_workers: 60\n", want: "worker.default_workers must be between 1 and worker.max_workers (50), got 60"},
		{desc: "idle check", yaml: "queue:\n  idle_check_interval: 5ms\n", want: "queue.idle_check_interval must be 0 (wake-ups off) or between 10ms and 1m, got 5ms"},
		{desc: "openai queue timeout", yaml: "server:\n  openai_queue_timeout: 0s\n", want: "server.openai_queue_timeout must be more than 0s and at most 24h, got 0s"},
		{desc: "openai queue timeout env", env: map[string]string{"OPENAI_QUEUE_TIMEOUT": "48h"}, want: "server.openai_queue_timeout must be more than 0s and at most 24h, got 48h0m0s"},
		{desc: "leader lease", yaml: "queue:\n  leader_lease_ttl: 500ms\n", want: "queue.leader_lease_ttl must be at least 1s, got 500ms"},
		{desc: "leader lease env", env: map[string]string{"QUEUE_LEADER_LEASE_TTL": "0s"}, want: "queue.leader_lease_ttl must be at least 1s, got 0s"},
		{desc: "idle check env", env: map[string]string{"QUEUE_IDLE_CHECK_INTERVAL": "2m"}, want: "queue.idle_check_interval must be 0 (wake-ups off) or between 10ms and 1m, got 2m0s"},
		{desc: "key prefix brace", yaml: "redis:\n  key_prefix: \"a{b}\"\n", want: `redis.key_prefix must not contain '{' or '}', got "a{b}"`},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			path := ""
			if tc.yaml != "" {
				path = filepath.Join(t.TempDir(), "c.yaml")
				if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := config.Load(path, env(tc.env))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestEmptyPasswordVariableClearsTheDefault: DB_PASSWORD set to the empty
// string (MariaDB's root without a password) means no password, not the
// default llm_password; unset, the default stays.
func TestEmptyPasswordVariableClearsTheDefault(t *testing.T) {
	lookup := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	c, err := config.LoadLookup("", lookup(map[string]string{"DB_HOST": "127.0.0.1", "DB_USER": "root", "DB_PASSWORD": "", "REDIS_HOST": "127.0.0.1", "REDIS_PASSWORD": ""}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Database.Password != "" || c.Redis.Password != "" || c.Database.Username != "root" {
		t.Errorf("DB_PASSWORD= gave password %q (redis %q, user %q), want none", c.Database.Password, c.Redis.Password, c.Database.Username)
	}
	c, err = config.LoadLookup("../../config.yaml", lookup(map[string]string{"DB_PASSWORD": ""}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Database.Password != "" {
		t.Errorf("DB_PASSWORD= over config.yaml gave password %q, want none", c.Database.Password)
	}
	c, err = config.LoadLookup("", lookup(map[string]string{"DB_HOST": "127.0.0.1", "DB_DRIVER": ""}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Database.Password != "llm_password" || c.Database.Driver != "mysql" {
		t.Errorf("unset DB_PASSWORD gave %q, DB_DRIVER= gave driver %q; want the defaults", c.Database.Password, c.Database.Driver)
	}
}

// TestSecretsAreTheHiddenFields: the credential settings are exactly the
// fields kept out of JSON, found by their tag, with what they are set to.
func TestSecretsAreTheHiddenFields(t *testing.T) {
	var c config.Config
	c.Redis.Password = "r-pass"
	c.Auth.PreviousEncryptionKeys = []string{"k1", "k2"}
	c.Webhooks.Secret = "wh-secret-0123456789"
	got := map[string][]string{}
	for _, s := range c.Secrets() {
		got[s.Key] = s.Values
	}
	want := map[string][]string{
		"database.password":             nil,
		"redis.password":                {"r-pass"},
		"redis.sentinel_password":       nil,
		"auth.encryption_key":           nil,
		"auth.previous_encryption_keys": {"k1", "k2"},
		"webhooks.secret":               {"wh-secret-0123456789"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Secrets (-want +got):\n%s", diff)
	}
}
