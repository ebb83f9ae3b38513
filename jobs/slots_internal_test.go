package jobs

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llmsched/llm-scheduler/broker"
)

func TestSlotsGrantNothingWhileTheEpochIsMissing(t *testing.T) {
	tests := []struct {
		name     string
		inScript bool
	}{
		{name: "epoch read before the script (Redis Cluster)", inScript: false},
		{name: "epoch checked by the script", inScript: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestSlots(t)
			s.epoch, s.epochInScript = "test:epoch", tc.inScript
			ctx := context.Background()

			// Redis lost its data: the task waits parked, however many
			// slots are free.
			held, granted, err := s.Admit(ctx, 1, 2, []admitItem{{ID: 7, Priority: 2}})
			if err != nil {
				t.Fatal(err)
			}
			if len(held) != 0 || len(granted) != 0 {
				t.Fatalf("without the epoch: held %v, granted %v; want nothing", held, granted)
			}
			if st, err := s.StateOf(ctx, 1, 7); err != nil || !st.Parked || st.Leased {
				t.Fatalf("without the epoch: state %+v (err %v), want parked without a lease", st, err)
			}
			// A release hands nothing on either.
			if granted, err := s.Release(ctx, 1, 2, 99, 0); err != nil || len(granted) != 0 {
				t.Fatalf("release without the epoch granted %v (err %v); want nothing", granted, err)
			}

			// Once the reconciler writes the epoch, slots are handed out.
			if err := s.rdb.Set(ctx, s.epoch, 1, 0).Err(); err != nil {
				t.Fatal(err)
			}
			before := s.now()
			granted, err = s.Pump(ctx, 1, 2)
			if err != nil {
				t.Fatal(err)
			}
			if len(granted) != 1 || granted[0].TaskID != 7 || granted[0].Priority != 2 || granted[0].At < before {
				t.Fatalf("with the epoch: granted %+v, want task 7 at priority 2, leased at %d or later", granted, before)
			}
			// Admit renews a held lease and says when.
			held, _, err = s.Admit(ctx, 1, 2, []admitItem{{ID: 7, Priority: 2}})
			if err != nil || len(held) != 1 || held[0].TaskID != 7 || held[0].At < granted[0].At {
				t.Fatalf("admit of a leased task: held %+v (err %v), want task 7 renewed", held, err)
			}
		})
	}
}

func TestEpochInScriptExceptOnRedisCluster(t *testing.T) {
	tests := []struct {
		name   string
		client redis.UniversalClient
		want   bool
	}{
		// Neither client dials until used.
		{name: "single server", client: redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), want: true},
		{name: "cluster", client: redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}}), want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Cleanup(func() { _ = tc.client.Close() })
			d := NewDispatcher(&broker.Broker{Client: tc.client, Prefix: "test"}, time.Minute, slog.New(slog.DiscardHandler))
			if got := d.slots.epochInScript; got != tc.want {
				t.Fatalf("epochInScript = %v, want %v", got, tc.want)
			}
		})
	}
}
