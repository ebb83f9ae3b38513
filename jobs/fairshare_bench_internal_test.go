package jobs

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// BenchmarkFairShareSlots: the slot scripts' cost per task (admit, then
// hand-offs on a 4-slot model with a backlog of about 1,000) with every
// task from one caller against tasks from 8 callers, on the embedded
// Redis (miniredis).
func BenchmarkFairShareSlots(b *testing.B) {
	for _, callers := range []int{1, 8} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			mr := miniredis.NewMiniRedis()
			if err := mr.Start(); err != nil {
				b.Fatal(err)
			}
			defer mr.Close()
			rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
			defer rdb.Close()
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
			b.ReportMetric(float64(mr.CommandCount()-before)/float64(b.N), "cmds/op")
		})
	}
}
