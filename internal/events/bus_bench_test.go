package events

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/llmsched/llm-scheduler/internal/domain"
)

// BenchmarkHubFanOut delivers one event to the subscriber of its task and
// to every firehose subscriber, among 1,000 per-task subscribers and 10
// firehoses (the bench's fan-out shape). Run: go test -bench . ./internal/events/
func BenchmarkHubFanOut(b *testing.B) {
	h := newHub[TaskEvent]()
	const tasks, firehoses = 1000, 10
	var subs []*Subscription[TaskEvent]
	for i := 1; i <= tasks; i++ {
		subs = append(subs, h.subscribe(i, 4, TaskFilter{TaskID: i}.Match))
	}
	for range firehoses {
		subs = append(subs, h.subscribe(0, 1<<20, TaskFilter{}.Match))
	}
	for _, s := range subs {
		go func() {
			for range s.C {
			}
		}()
	}
	b.Cleanup(func() {
		for _, s := range subs {
			s.Close()
		}
	})
	e := TaskEvent{ModelID: 1, Priority: 2, Type: domain.TypeTextGeneration, From: domain.StatusRunning, To: domain.StatusCompleted, At: time.Now()}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		e.TaskID = i%tasks + 1
		h.send(e.TaskID, e)
	}
}

// BenchmarkPublishDeliver publishes a task event on a bus and waits until
// the bus's own subscriber received it through Redis (in-process
// miniredis): encoding, the outbox, pub/sub, decoding and the hub.
func BenchmarkPublishDeliver(b *testing.B) {
	mr := miniredis.RunT(b)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	bus := NewBus(rdb, fmt.Sprintf("bench%d", b.N), slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := bus.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = bus.Stop(context.Background()) }()
	<-bus.Ready()
	sub := bus.SubscribeTasks(TaskFilter{}, 1<<20)
	defer sub.Close()
	e := TaskEvent{ModelID: 1, Priority: 2, Type: domain.TypeTextGeneration, From: domain.StatusPending, To: domain.StatusRunning, At: time.Now()}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		n++
		e.TaskID = n
		if err := bus.PublishTask(ctx, e); err != nil {
			b.Fatal(err)
		}
		select {
		case <-sub.C:
		case <-time.After(10 * time.Second):
			b.Fatalf("event %d not delivered", n)
		}
	}
}
