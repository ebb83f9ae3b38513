package broker

import (
	"reflect"
	"testing"

	"github.com/llmsched/llm-scheduler/config"
)

// TestConnOptSentinelSettings: the Sentinel settings, which the client made
// from them does not expose, reach the failover options.
func TestConnOptSentinelSettings(t *testing.T) {
	got, ok := ConnOpt(config.Redis{DB: 2, Password: "pw", SentinelMaster: "mymaster",
		SentinelAddrs: []string{"s1:26379", "s2:26379"}, SentinelPassword: "spw", PoolSize: 70}).(failoverOpt)
	if !ok {
		t.Fatalf("ConnOpt with sentinel_master is not a failover option")
	}
	o := got.FailoverOptions
	if o.MasterName != "mymaster" || !reflect.DeepEqual(o.SentinelAddrs, []string{"s1:26379", "s2:26379"}) ||
		o.SentinelPassword != "spw" || o.Password != "pw" || o.DB != 2 || o.PoolSize != 70 || o.Protocol != Protocol {
		t.Fatalf("failover options %+v", o)
	}
}
