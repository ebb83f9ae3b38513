package jobs

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/llmsched/llm-scheduler/internal/rediskeys"
	"github.com/redis/go-redis/v9"
)

// TestStoppedGateHoldsNoDequeue: asynq's shutdown waits for the dequeue
// call in progress, which a quiet gate holds for up to quietWait. stop
// releases a held call at once and answers every later one without Redis
// and without holding, so Worker.Shutdown (which stops the gate first) is
// not delayed by an idle worker's hold. Here the hold would be an hour.
func TestStoppedGateHoldsNoDequeue(t *testing.T) {
	g := newIdleGate(func(context.Context) error { return nil }, time.Hour, time.Hour, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	var reached int
	process := g.ProcessHook(func(_ context.Context, cmd redis.Cmder) error {
		reached++
		cmd.SetErr(redis.Nil)
		return redis.Nil
	})
	q := rediskeys.AsynqPending(QueueHigh)
	dequeue := func() error {
		base := strings.TrimSuffix(q, ":pending")
		return process(ctx, redis.NewCmd(ctx, "evalsha", "sha", 4, q, base+":paused", base+":active", base+":lease", "0", "0"))
	}
	if err := dequeue(); !errors.Is(err, redis.Nil) || reached != 1 {
		t.Fatalf("going quiet: err %v after %d reached looks, want one reached look", err, reached)
	}
	held := make(chan bool, 1)
	go func() { held <- g.wait(ctx, time.Hour) }()
	g.stop()
	select {
	case woken := <-held:
		if woken {
			t.Fatal("stop reported as a wake-up: the poller would look again instead of returning")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("stop did not release a poller held for an hour")
	}
	answered := make(chan error, 1)
	go func() { answered <- dequeue() }()
	select {
	case err := <-answered:
		if !errors.Is(err, redis.Nil) || reached != 1 {
			t.Fatalf("after stop: err %v after %d reached looks, want an answer here", err, reached)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("after stop, a dequeue call was still held")
	}
	g.stop() // twice is fine
}
