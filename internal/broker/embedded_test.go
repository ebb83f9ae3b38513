package broker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llmsched/llm-scheduler/internal/broker"
	"github.com/llmsched/llm-scheduler/internal/config"
)

// TestEmbeddedTakesALargePipelineOfSmallReplies: the event outbox's
// largest round is a pipeline of a thousand PUBLISHes of a few KB each.
// miniredis answers each command with a write of its own while the client
// is still writing the rest of the pipeline: over a transport that bounds
// what is in flight (a socket pair, net.Pipe) both ends block for good.
func TestEmbeddedTakesALargePipelineOfSmallReplies(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := broker.Open(ctx, config.Redis{Embedded: true, KeyPrefix: "pipeline"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sub := b.Client.Subscribe(ctx, "events")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	payload := strings.Repeat("x", 4096)
	const n = 1000
	pipe := b.Client.Pipeline()
	cmds := make([]*redis.IntCmd, n)
	for i := range cmds {
		cmds[i] = pipe.Publish(ctx, "events", payload)
	}
	done := make(chan error, 1)
	go func() {
		_, err := pipe.Exec(ctx)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("pipeline of %d PUBLISHes: %v", n, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("a pipeline of %d 4 KB PUBLISHes got no answer in 10 s", n)
	}
	for i, c := range cmds {
		if c.Val() != 1 {
			t.Fatalf("PUBLISH %d reached %d subscribers, want 1", i, c.Val())
		}
	}
	ch := sub.Channel()
	for i := range n {
		select {
		case m := <-ch:
			if len(m.Payload) != len(payload) {
				t.Fatalf("message %d has %d bytes, want %d", i, len(m.Payload), len(payload))
			}
		case <-ctx.Done():
			t.Fatalf("the subscriber got %d of %d messages", i, n)
		}
	}
}

// TestEmbeddedRefusesClientsOnceClosed: a client of a closed embedded
// broker gets an error, not a connection to a server that is gone.
func TestEmbeddedRefusesClientsOnceClosed(t *testing.T) {
	ctx := context.Background()
	b, err := broker.Open(ctx, config.Redis{Embedded: true, KeyPrefix: "closed"})
	if err != nil {
		t.Fatal(err)
	}
	other, ok := b.Opt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		t.Fatalf("Opt makes a %T", b.Opt.MakeRedisClient())
	}
	defer other.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	err = other.Ping(ctx).Err()
	if err == nil || !strings.Contains(err.Error(), "embedded redis is not running") {
		t.Fatalf("ping after close: %v, want: embedded redis is not running", err)
	}
}
