package jobs

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// BenchmarkFairShareSlots: the slot scripts' cost per task (admit, then
// hand-offs on a 4-slot model with a backlog of about 1,000) with every
// task from one caller against tasks from 8 callers, on the embedded
// Redis (miniredis), or on a private redis-server at BENCH_REDIS_ADDR (the
// benchmark flushes its database).
func BenchmarkFairShareSlots(b *testing.B) {
	for _, callers := range []int{1, 8} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			mr := miniredis.NewMiniRedis()
			if err := mr.Start(); err != nil {
				b.Fatal(err)
			}
			defer mr.Close()
			addr := mr.Addr()
			if a := os.Getenv("BENCH_REDIS_ADDR"); a != "" {
				addr = a // a private redis-server; its keys are flushed
			}
			rdb := redis.NewClient(&redis.Options{Addr: addr})
			defer rdb.Close()
			if addr != mr.Addr() {
				if err := rdb.FlushDB(context.Background()).Err(); err != nil {
					b.Fatal(err)
				}
			}
			s := &Slots{rdb: rdb, prefix: "bench", ttl: time.Minute}
			ctx := context.Background()
			const model, backlog = 1, 1000
			var running []int
			next := 1
			admit := func() {
				_, granted, err := s.Admit(ctx, model, 4, []admitItem{{ID: next, Priority: 2, Caller: fmt.Sprintf("c%d", next%callers), Weight: 1}})
				if err != nil {
					b.Fatal(err)
				}
				next++
				for _, g := range granted {
					running = append(running, g.TaskID)
				}
			}
			for range backlog {
				admit()
			}
			before := mr.CommandCount()
			b.ResetTimer()
			for range b.N {
				admit()
				id := running[0]
				running = running[1:]
				granted, err := s.Release(ctx, model, 4, id, 0)
				if err != nil {
					b.Fatal(err)
				}
				for _, g := range granted {
					running = append(running, g.TaskID)
				}
			}
			if addr == mr.Addr() {
				b.ReportMetric(float64(mr.CommandCount()-before)/float64(b.N), "cmds/op")
			}
		})
	}
}

// BenchmarkAdmitBatchBehindDrainedHead: a createTasks batch of 1,000
// parked behind a backlog of 20,000 whose head the hand-offs have just
// drained (every slot busy), on the embedded Redis. Each parked task asks
// whether its band is empty; with the head empty that was a read of the
// tail, which miniredis answers by sorting all 20,000 (refill).
func BenchmarkAdmitBatchBehindDrainedHead(b *testing.B) {
	mr := miniredis.RunT(b)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	s := &Slots{rdb: rdb, prefix: "bench", ttl: time.Hour}
	ctx := context.Background()
	const model, backlog, batch = 1, 20_000, 1_000
	k := s.keys(model)
	items := func(from, n int) []admitItem {
		out := make([]admitItem, n)
		for i := range out {
			out[i] = admitItem{ID: from + i, Priority: 2}
		}
		return out
	}
	// Task 0 takes the one slot (and starts its band's clock); the
	// backlog parks behind it.
	if _, granted, err := s.Admit(ctx, model, 1, items(0, 1)); err != nil || len(granted) != 1 {
		b.Fatalf("granted %v, err %v", granted, err)
	}
	for from := 1; from <= backlog; from += batch {
		if _, _, err := s.Admit(ctx, model, 1, items(from, batch)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		// Drain the head as hand-offs do: its tasks go to the tail here
		// (they rank first there too), so the backlog stays 20,000.
		zs, err := rdb.ZRangeWithScores(ctx, k[3], 0, -1).Result()
		if err != nil {
			b.Fatal(err)
		}
		if len(zs) > 0 {
			if err := rdb.ZAdd(ctx, k[0], zs...).Err(); err != nil {
				b.Fatal(err)
			}
		}
		if err := rdb.Del(ctx, k[3]).Err(); err != nil {
			b.Fatal(err)
		}
		// A hand-off moved the band's clock (served): a task parked
		// now asks whether its band is empty.
		if err := rdb.HSet(ctx, k[4], "v2", "1000000").Err(); err != nil {
			b.Fatal(err)
		}
		from := 1_000_000 + i*batch
		b.StartTimer()
		if _, _, err := s.Admit(ctx, model, 1, items(from, batch)); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		ids := make([]any, batch)
		for j := range ids {
			ids[j] = from + j
		}
		if err := rdb.ZRem(ctx, k[0], ids...).Err(); err != nil {
			b.Fatal(err)
		}
		if err := rdb.ZRem(ctx, k[3], ids...).Err(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
