package scheduler

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

// TestCostlyCountsAreReusedAndRefreshedInTheBackground: a count that took
// costlyCount or more answers from the cache (no caller waits for it
// again), is refreshed by one background read once countReuse times its
// cost has passed, and a cheap count is read fresh on every call.
func TestCostlyCountsAreReusedAndRefreshedInTheBackground(t *testing.T) {
	s := newTaskCounts(nil, newBackground(), slog.New(slog.DiscardHandler))
	ctx := context.Background()
	tests := []struct {
		name   string
		cost   time.Duration
		cached bool
	}{
		{name: "cheap count: always fresh", cost: 0, cached: false},
		{name: "costly count: cached", cost: costlyCount + 10*time.Millisecond, cached: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c countCache[int]
			var reads atomic.Int64
			load := func(context.Context) (int, error) {
				time.Sleep(tc.cost)
				return int(reads.Add(1)), nil
			}
			if v, err := c.get(ctx, s, "test", load); err != nil || v != 1 {
				t.Fatalf("first get = %d, %v; want 1 (read)", v, err)
			}
			v, err := c.get(ctx, s, "test", load)
			if err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{true: 1, false: 2}[tc.cached]; v != want {
				t.Fatalf("second get = %d, want %d", v, want)
			}
			if !tc.cached {
				return
			}
			// Past the reuse window: the stale count answers at once and
			// one read refreshes it in the background.
			c.mu.Lock()
			c.at = time.Now().Add(-countReuse * c.took)
			c.mu.Unlock()
			for range 5 {
				if v, err := c.get(ctx, s, "test", load); err != nil || v != 1 {
					t.Fatalf("stale get = %d, %v; want the cached 1 at once", v, err)
				}
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				c.mu.Lock()
				v, refreshing := c.val, c.refreshing
				c.mu.Unlock()
				if v == 2 && !refreshing {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no background refresh: value %d", v)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if n := reads.Load(); n != 2 {
				t.Fatalf("%d reads, want 2 (one background refresh for five stale gets)", n)
			}
		})
	}
}
