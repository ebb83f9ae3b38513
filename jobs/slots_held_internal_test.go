package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/llmsched/llm-scheduler/internal/redistest"
)

// pipelines counts the round trips a client makes: one per command sent on
// its own, one per pipeline; a new connection's handshake (HELLO, CLIENT
// SETINFO) is not counted.
type pipelines struct{ n atomic.Int64 }

func (p *pipelines) DialHook(next redis.DialHook) redis.DialHook { return next }
func (p *pipelines) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		p.count(cmd)
		return next(ctx, cmd)
	}
}
func (p *pipelines) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		p.count(cmds[0])
		return next(ctx, cmds)
	}
}
func (p *pipelines) count(first redis.Cmder) {
	if n := first.Name(); n != "hello" && n != "client" {
		p.n.Add(1)
	}
}

// heldClients are the Redis servers Held is checked on: miniredis always,
// and on the mysql backend the real Redis in both protocols (RESP2 answers
// ZMSCORE's scores as strings, RESP3 as doubles; a missing member is a nil
// in both), and a Redis Cluster when the suite runs on one.
func heldClients(t *testing.T) map[string]redis.UniversalClient {
	clients := map[string]redis.UniversalClient{
		"miniredis": redis.NewClient(&redis.Options{Addr: miniredis.RunT(t).Addr()}),
	}
	if os.Getenv("LLMSCHED_TEST_BACKEND") == "mysql" {
		addr := redistest.SharedAddr()
		clients["redis RESP3"] = redis.NewClient(&redis.Options{Addr: addr, Protocol: 3})
		clients["redis RESP2"] = redis.NewClient(&redis.Options{Addr: addr, Protocol: 2})
		if nodes := os.Getenv("TEST_REDIS_CLUSTER"); nodes != "" {
			// Each model's keys on their own hash slot: one pipeline,
			// split by go-redis between the masters.
			clients["redis cluster"] = redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(nodes, ",")})
		}
	}
	for _, c := range clients {
		t.Cleanup(func() { _ = c.Close() })
	}
	return clients
}

// ownSlots is Slots under a random prefix of its own on rdb, a server
// other tests share: a test deletes the keys it made there, nothing else.
func ownSlots(rdb redis.UniversalClient, name string) *Slots {
	b := make([]byte, 6)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return &Slots{rdb: rdb, prefix: name + ":" + hex.EncodeToString(b), ttl: time.Minute}
}

func TestHeldReadsEveryModelInOneRoundTrip(t *testing.T) {
	for name, rdb := range heldClients(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := ownSlots(rdb, "heldtest")
			now := float64(s.now())
			var keys []string
			zadd := func(key string, score float64, id string) {
				t.Helper()
				keys = append(keys, key)
				if err := rdb.ZAdd(ctx, key, redis.Z{Score: score, Member: id}).Err(); err != nil {
					t.Fatal(err)
				}
			}
			t.Cleanup(func() { _ = rdb.Del(context.Background(), keys...).Err() })
			// Model 1: task 10 at the head (score 0 is a score, not a
			// miss), 11 parked, 12 leased, 13 with an expired lease,
			// 14 unknown. Model 2: 20 leased, 21 unknown. Model 3: 30
			// parked under model 1's keys only, so unknown to model 3.
			k1, k2 := s.keys(1), s.keys(2)
			zadd(k1[3], 0, "10")
			zadd(k1[0], 5, "11")
			zadd(k1[1], now+60_000, "12")
			zadd(k1[1], now-1, "13")
			zadd(k1[0], 7, "30")
			zadd(k2[1], now+60_000, "20")

			var rt pipelines
			rdb.AddHook(&rt)
			h, err := s.Held(ctx, map[int][]int{1: {10, 11, 12, 13, 14}, 2: {20, 21}, 3: {30}, 4: {}})
			if err != nil {
				t.Fatal(err)
			}
			if got := rt.n.Load(); got != 1 {
				t.Errorf("Held took %d round trips for three models, want 1", got)
			}
			want := map[int][2]bool{ // present, leased
				10: {true, false}, 11: {true, false}, 12: {true, true}, 13: {true, false}, 14: {false, false},
				20: {true, true}, 21: {false, false}, 30: {false, false},
			}
			for id, w := range want {
				if got := [2]bool{h.Present(id), h.Leased(id)}; got != w {
					t.Errorf("task %d: present, leased = %v, want %v", id, got, w)
				}
			}

			// Nothing to read: no round trip.
			rt.n.Store(0)
			if _, err := s.Held(ctx, map[int][]int{5: nil}); err != nil || rt.n.Load() != 0 {
				t.Errorf("Held of no tasks: err %v, %d round trips; want none", err, rt.n.Load())
			}
		})
	}
}
