package broker_test

import (
	"context"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llmsched/llm-scheduler/internal/broker"
	"github.com/llmsched/llm-scheduler/internal/config"
)

// TestCommandsCountsEveryClient: the broker's own client and every client
// made from its Opt (asynq's clients, servers and inspectors) add to
// Commands: one per command, each command of a pipeline, a script call
// once (the server's own count is the reference); asynq's calls count too.
func TestCommandsCountsEveryClient(t *testing.T) {
	ctx := context.Background()
	b, err := broker.Open(ctx, config.Redis{Embedded: true, KeyPrefix: "cmdcount"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	other, ok := b.Opt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		t.Fatalf("Opt makes a %T", b.Opt.MakeRedisClient())
	}
	defer other.Close()
	// Three commands and a pipeline of four: 7 commands.
	round := func() {
		b.Client.Set(ctx, "a", "1", 0)
		b.Client.Get(ctx, "a")
		other.Incr(ctx, "n")
		pipe := other.Pipeline()
		for range 4 {
			pipe.Incr(ctx, "n")
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// The first round opens connections, whose handshakes are commands
	// too; the second runs on them.
	round()
	start, served := b.Commands(), b.Embedded.CommandCount()
	round()
	got, server := b.Commands()-start, int64(b.Embedded.CommandCount()-served)
	if got != 7 || server != 7 {
		t.Fatalf("Commands grew by %d after 3 commands and a pipeline of 4 (Redis served %d); want 7", got, server)
	}
	// A script call is one command sent, whatever it runs inside Redis.
	start = b.Commands()
	if err := redis.NewScript(`redis.call('INCR', KEYS[1]) return redis.call('INCR', KEYS[1])`).Eval(ctx, b.Client, []string{"n"}).Err(); err != nil {
		t.Fatal(err)
	}
	if got := b.Commands() - start; got != 1 {
		t.Fatalf("a script call counted %d, want 1", got)
	}

	// asynq's client, made from Opt, counts as well.
	ac := asynq.NewClient(b.Opt)
	defer ac.Close()
	before := b.Commands()
	if _, err := ac.Enqueue(asynq.NewTask("count", nil)); err != nil {
		t.Fatal(err)
	}
	if b.Commands() == before {
		t.Fatal("an asynq enqueue through a client made from Opt was not counted")
	}
}
