package bench

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llmsched/llm-scheduler/internal/broker"
)

// claimMarker holds a Redis database number for the bench while it runs.
const claimMarker = "llmsched-bench:claim"

// claimRedisDB takes a Redis database number that nobody uses: it must be
// empty apart from our marker. want >= 0 asks for that number only; -1
// tries 14 down to 1. Only a database claimed this way is ever flushed,
// and only by release. The client (the baseline's) gets the scheduler's
// pool size.
func claimRedisDB(ctx context.Context, addr, password string, poolSize, want int) (int, *redis.Client, error) {
	candidates := []int{want}
	if want < 0 {
		candidates = nil
		for db := 14; db >= 1; db-- {
			candidates = append(candidates, db)
		}
	}
	for _, db := range candidates {
		c := redis.NewClient(&redis.Options{Addr: addr, Password: password, DB: db, PoolSize: poolSize, Protocol: broker.Protocol})
		ok, err := c.SetNX(ctx, claimMarker, os.Getpid(), 2*time.Hour).Result()
		if err != nil {
			_ = c.Close()
			return 0, nil, fmt.Errorf("redis at %s: %w", addr, err)
		}
		if !ok {
			_ = c.Close()
			continue
		}
		if n, err := c.DBSize(ctx).Result(); err != nil || n != 1 {
			// Somebody else's data lives here: leave it alone.
			_ = c.Del(ctx, claimMarker)
			_ = c.Close()
			continue
		}
		return db, c, nil
	}
	if want >= 0 {
		return 0, nil, fmt.Errorf("redis database %d at %s is not empty or is claimed by another run; pick another with --redis-db", want, addr)
	}
	return 0, nil, fmt.Errorf("no empty redis database number at %s (14..1 are all in use)", addr)
}

// releaseRedisDB empties a database this run claimed (it held only our
// keys) and closes the client.
func releaseRedisDB(c *redis.Client) error {
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if v, err := c.Get(ctx, claimMarker).Int(); err != nil || v != os.Getpid() {
		return fmt.Errorf("redis db no longer carries this run's claim; not flushing it")
	}
	return c.FlushDB(ctx).Err()
}
