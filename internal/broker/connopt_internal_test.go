package broker

import (
	"reflect"
	"testing"
	"time"

	"github.com/llmsched/llm-scheduler/internal/config"
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

// TestConnOptClusterReloadsItsSlotMapOften: the Cluster client reloads its
// slot map every ClusterReload while in use, instead of go-redis's 60 s,
// which after a master's failover kept its models' commands going to the
// dead master for about 50 s (chaos/TestClusterFailover measures it).
func TestConnOptClusterReloadsItsSlotMapOften(t *testing.T) {
	got, ok := ConnOpt(config.Redis{ClusterAddrs: []string{"n1:6379", "n2:6379"}, Password: "pw", PoolSize: 70}).(clusterOpt)
	if !ok {
		t.Fatalf("ConnOpt with cluster_addrs is not a cluster option")
	}
	o := got.ClusterOptions
	if !reflect.DeepEqual(o.Addrs, []string{"n1:6379", "n2:6379"}) || o.Password != "pw" || o.PoolSize != 70 ||
		o.ClusterStateReloadInterval != ClusterReload || ClusterReload > 5*time.Second {
		t.Fatalf("cluster options %+v, want the slot map reloaded every %s (at most 5s)", o, ClusterReload)
	}
}
