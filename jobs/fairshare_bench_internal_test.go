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
