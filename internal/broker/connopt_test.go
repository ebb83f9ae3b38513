package broker_test

import (
	"reflect"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/llmsched/llm-scheduler/internal/broker"
	"github.com/llmsched/llm-scheduler/internal/config"
)

// TestConnOptPassesSentinelAndClusterToAsynq: the Redis settings reach
// the client asynq, the dispatcher and the bus share, the client is the
// kind that topology needs, and it speaks RESP2 (protocol).
func TestConnOptPassesSentinelAndClusterToAsynq(t *testing.T) {
	tests := []struct {
		name       string
		cfg        config.Redis
		wantAddr   string // "" for a cluster
		wantDB     int
		wantClient any
	}{
		{
			name:     "single server",
			cfg:      config.Redis{Host: "redis.internal", Port: 6380, DB: 3, Password: "pw", PoolSize: 70},
			wantAddr: "redis.internal:6380", wantDB: 3,
			wantClient: &redis.Client{},
		},
		{
			name: "sentinel",
			cfg: config.Redis{Host: "ignored", Port: 6379, DB: 2, Password: "pw", SentinelMaster: "mymaster",
				SentinelAddrs: []string{"s1:26379", "s2:26379"}, SentinelPassword: "spw", PoolSize: 70},
			wantAddr: "FailoverClient", wantDB: 2, // go-redis's name for a Sentinel-resolved master
			wantClient: &redis.Client{},
		},
		{
			name: "cluster wins over sentinel",
			cfg: config.Redis{Password: "pw", ClusterAddrs: []string{"c1:7000", "c2:7001"},
				SentinelMaster: "mymaster", SentinelAddrs: []string{"s1:26379"}, PoolSize: 70},
			wantClient: &redis.ClusterClient{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opt := broker.ConnOpt(tc.cfg)
			c := opt.MakeRedisClient()
			defer c.(redis.UniversalClient).Close()
			if reflect.TypeOf(c) != reflect.TypeOf(tc.wantClient) {
				t.Fatalf("client is %T, want %T", c, tc.wantClient)
			}
			switch c := c.(type) {
			case *redis.ClusterClient:
				o := c.Options()
				if !reflect.DeepEqual(o.Addrs, tc.cfg.ClusterAddrs) || o.Password != "pw" || o.PoolSize != 70 || o.Protocol != 2 {
					t.Fatalf("cluster options: addrs %v, password %q, pool size %d, protocol %d", o.Addrs, o.Password, o.PoolSize, o.Protocol)
				}
			case *redis.Client:
				o := c.Options()
				if o.Addr != tc.wantAddr || o.DB != tc.wantDB || o.Password != "pw" || o.PoolSize != 70 || o.Protocol != 2 {
					t.Fatalf("client options: addr %q, db %d, password %q, pool size %d, protocol %d", o.Addr, o.DB, o.Password, o.PoolSize, o.Protocol)
				}
			}
		})
	}
}
