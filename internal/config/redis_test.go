package config_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/llmsched/llm-scheduler/internal/config"
)

// TestRedisSentinelAndClusterSettings: Sentinel and Cluster come from the
// YAML keys and from the environment, and need no redis.host.
func TestRedisSentinelAndClusterSettings(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	yaml := `redis:
  host: ""
  sentinel_master: mymaster
  sentinel_addrs: ["s1:26379", "s2:26379"]
  sentinel_password: spw
  password: pw
  db: 2
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(path, func(string) string { return "" })
	if err != nil {
		t.Fatalf("sentinel config: %v", err)
	}
	r := c.Redis
	if r.SentinelMaster != "mymaster" || !reflect.DeepEqual(r.SentinelAddrs, []string{"s1:26379", "s2:26379"}) ||
		r.SentinelPassword != "spw" || r.Password != "pw" || r.DB != 2 {
		t.Fatalf("redis = %+v", r)
	}

	env := map[string]string{
		"DB_HOST": "db", "REDIS_CLUSTER_ADDRS": "c1:7000, c2:7001,", "REDIS_PASSWORD": "pw2",
	}
	c, err = config.Load("", func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("cluster from env: %v", err)
	}
	if c.Redis.Embedded || !reflect.DeepEqual(c.Redis.ClusterAddrs, []string{"c1:7000", "c2:7001"}) || c.Redis.Password != "pw2" {
		t.Fatalf("redis from env = %+v", c.Redis)
	}

	env = map[string]string{"DB_HOST": "db", "REDIS_HOST": "r", "REDIS_SENTINEL_MASTER": "m", "REDIS_SENTINEL_ADDRS": "a:1,b:2"}
	c, err = config.Load("", func(k string) string { return env[k] })
	if err != nil || c.Redis.SentinelMaster != "m" || !reflect.DeepEqual(c.Redis.SentinelAddrs, []string{"a:1", "b:2"}) {
		t.Fatalf("sentinel from env = %+v, %v", c.Redis, err)
	}

	env = map[string]string{"DB_HOST": "db", "REDIS_HOST": "r", "REDIS_SENTINEL_MASTER": "m"}
	if _, err := config.Load("", func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "redis.sentinel_addrs") {
		t.Fatalf("sentinel master without addresses: err = %v, want one naming redis.sentinel_addrs", err)
	}
}
