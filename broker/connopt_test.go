package broker_test

import (
	"reflect"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llmsched/llm-scheduler/broker"
	"github.com/llmsched/llm-scheduler/config"
)

// TestConnOptPassesSentinelAndClusterToAsynq: the Redis settings reach
// asynq's connection options unchanged, and the client made from them is
// the kind that topology needs.
func TestConnOptPassesSentinelAndClusterToAsynq(t *testing.T) {
	tests := []struct {
		name       string
		cfg        config.Redis
		want       asynq.RedisConnOpt
		wantClient any
	}{
		{
			name:       "single server",
			cfg:        config.Redis{Host: "redis.internal", Port: 6380, DB: 3, Password: "pw", PoolSize: 70},
			want:       asynq.RedisClientOpt{Addr: "redis.internal:6380", DB: 3, Password: "pw", PoolSize: 70},
			wantClient: &redis.Client{},
		},
		{
			name: "sentinel",
			cfg: config.Redis{Host: "ignored", Port: 6379, DB: 2, Password: "pw", SentinelMaster: "mymaster",
				SentinelAddrs: []string{"s1:26379", "s2:26379"}, SentinelPassword: "spw", PoolSize: 70},
			want: asynq.RedisFailoverClientOpt{MasterName: "mymaster", SentinelAddrs: []string{"s1:26379", "s2:26379"},
				SentinelPassword: "spw", Password: "pw", DB: 2, PoolSize: 70},
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
			got := broker.ConnOpt(tc.cfg)
			if tc.want != nil && !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ConnOpt = %#v, want %#v", got, tc.want)
			}
			c := got.MakeRedisClient()
			defer c.(redis.UniversalClient).Close()
			if reflect.TypeOf(c) != reflect.TypeOf(tc.wantClient) {
				t.Fatalf("client is %T, want %T", c, tc.wantClient)
			}
			if cc, ok := c.(*redis.ClusterClient); ok {
				o := cc.Options()
				if !reflect.DeepEqual(o.Addrs, tc.cfg.ClusterAddrs) || o.Password != "pw" || o.PoolSize != 70 {
					t.Fatalf("cluster options: addrs %v, password %q, pool size %d", o.Addrs, o.Password, o.PoolSize)
				}
			}
		})
	}
}
