package jobs

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llmsched/llm-scheduler/internal/broker"
	"github.com/llmsched/llm-scheduler/internal/rediskeys"
)

// testGate is an idle gate on a fresh miniredis, setting the wake key
// under the prefix "gt", with the given check and recheck intervals.
func testGate(t *testing.T, check, recheck time.Duration) (*miniredis.Miniredis, *idleGate) {
	t.Helper()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() {
		if err := rdb.Close(); err != nil {
			t.Errorf("close redis client: %v", err)
		}
	})
	return mr, newIdleGate(setWakeKey(rdb, "gt"), check, recheck, slog.New(slog.DiscardHandler))
}

// TestIdleGateLooksOnlyAtChecksAndAfterWakeUps: once quiet, the gate sets
// the wake key and looks at each queue once; then it answers locally until
// a check interval has passed or a wake-up arrives.
func TestIdleGateLooksOnlyAtChecksAndAfterWakeUps(t *testing.T) {
	const check = 50 * time.Millisecond
	mr, g := testGate(t, check, 4*time.Millisecond)
	ctx := context.Background()
	queues := []string{"asynq:{high}:pending", "asynq:{medium}:pending", "asynq:{low}:pending"}
	round := func() (looked int) {
		for _, q := range queues {
			if toRedis, _ := g.look(ctx, q); toRedis {
				looked++
			}
		}
		return looked
	}

	if n := round(); n != 3 {
		t.Fatalf("going quiet: looked at %d queues, want all 3", n)
	}
	if !mr.Exists(rediskeys.WakeArmed("gt")) {
		t.Fatal("the gate went quiet without setting the wake key")
	}
	if n := round(); n != 0 {
		t.Fatalf("quiet: looked at %d queues, want none", n)
	}

	g.wake()
	if n := round(); n != 3 {
		t.Fatalf("after a wake-up: looked at %d queues, want all 3", n)
	}
	time.Sleep(2 * idleGrace)
	mr.Del(rediskeys.WakeArmed("gt")) // as the slot script that woke us did
	if n := round(); n != 3 {
		t.Fatalf("quiet again: looked at %d queues, want all 3 (after setting the key)", n)
	}
	if !mr.Exists(rediskeys.WakeArmed("gt")) {
		t.Fatal("the gate went quiet again without setting the wake key")
	}
	if n := round(); n != 0 {
		t.Fatalf("quiet: looked at %d queues, want none", n)
	}

	time.Sleep(check + 10*time.Millisecond)
	mr.Del(rediskeys.WakeArmed("gt")) // a wake-up that was lost
	if n := round(); n != 3 {
		t.Fatalf("after a check interval: looked at %d queues, want all 3", n)
	}
	if !mr.Exists(rediskeys.WakeArmed("gt")) {
		t.Fatal("the idle check did not set the wake key again")
	}
}

// TestIdleGateRecognizesAsynqDequeue: on a real asynq server the gate
// sees the processor's dequeue calls and answers them while quiet (few
// reach Redis), and a task woken for runs.
func TestIdleGateRecognizesAsynqDequeue(t *testing.T) {
	var reached atomic.Int64 // dequeue calls that got past the gate
	g, plain, ran := startGatedServer(t, time.Hour, countDequeues{&reached})

	// A quiet gate answers once per quietWait.
	for deadline := time.Now().Add(10 * time.Second); g.answered.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the gate answered no dequeue call: it does not recognize asynq's")
		}
	}
	before := reached.Load()
	time.Sleep(300 * time.Millisecond)
	if n := reached.Load() - before; n > 0 {
		t.Fatalf("%d dequeue calls reached Redis while quiet (check interval 1h), want 0", n)
	}

	cl := asynq.NewClientFromRedisClient(plain)
	if _, err := cl.Enqueue(asynq.NewTask("t", []byte("woken")), asynq.Queue(QueueMedium)); err != nil {
		t.Fatal(err)
	}
	g.wake()
	select {
	case p := <-ran:
		if p != "woken" {
			t.Fatalf("ran %q", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the task enqueued before a wake-up did not run")
	}
}

// startGatedServer runs an asynq server (the worker's three queues,
// strict priority, polling every wokenPoll) on miniredis through an idle
// gate with the given check interval, and hooks after the gate. It returns
// the gate, a client without the gate, and the payloads the handler ran.
func startGatedServer(t *testing.T, check time.Duration, after ...redis.Hook) (*idleGate, *redis.Client, <-chan string) {
	t.Helper()
	mr := miniredis.RunT(t)
	plain := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	gated := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	g := newIdleGate(setWakeKey(plain, "gt"), check, 4*time.Millisecond, slog.New(slog.DiscardHandler))
	gated.AddHook(g)
	for _, h := range after {
		gated.AddHook(h)
	}
	ran := make(chan string, 2)
	srv := asynq.NewServerFromRedisClient(gated, asynq.Config{
		Concurrency: 1, Queues: map[string]int{QueueHigh: 3, QueueMedium: 2, QueueLow: 1}, StrictPriority: true,
		TaskCheckInterval: wokenPoll, LogLevel: asynq.ErrorLevel,
	})
	if err := srv.Start(asynq.HandlerFunc(func(_ context.Context, at *asynq.Task) error {
		ran <- string(at.Payload())
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Shutdown()
		_ = gated.Close()
		_ = plain.Close()
	})
	return g, plain, ran
}

// countDequeues counts asynq dequeue calls that reach it.
type countDequeues struct{ n *atomic.Int64 }

func (c countDequeues) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c countDequeues) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (c countDequeues) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if _, ok := dequeueQueue(cmd); ok {
			c.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

// TestIdleCheckFindsWorkWithoutWakeUp: a task nobody wakes the worker for
// (asynq made it due, or the wake-up was lost) runs at the next idle
// check, even after Redis lost its script cache: the gate lets through
// the EVAL that follows an EVALSHA answered NOSCRIPT.
func TestIdleCheckFindsWorkWithoutWakeUp(t *testing.T) {
	_, plain, ran := startGatedServer(t, 50*time.Millisecond)
	cl := asynq.NewClientFromRedisClient(plain)
	for _, name := range []string{"first", "after script flush"} {
		time.Sleep(100 * time.Millisecond) // quiet
		if name != "first" {
			if err := plain.ScriptFlush(context.Background()).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := cl.Enqueue(asynq.NewTask("t", []byte(name)), asynq.Queue(QueueLow)); err != nil {
			t.Fatal(err)
		}
		select {
		case p := <-ran:
			if p != name {
				t.Fatalf("ran %q, want %q", p, name)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("task %q enqueued without a wake-up did not run at an idle check", name)
		}
	}
}

// TestBusyGateSparesEmptyQueues: while busy, a queue Redis just found
// empty is answered locally for the recheck interval, unless this process
// enqueues into it or a wake-up arrives.
func TestBusyGateSparesEmptyQueues(t *testing.T) {
	const recheck = 4 * time.Millisecond
	_, g := testGate(t, time.Hour, recheck)
	ctx := context.Background()
	high, medium := rediskeys.AsynqPending(QueueHigh), rediskeys.AsynqPending(QueueMedium)
	looks := func(q string) bool {
		toRedis, quiet := g.look(ctx, q)
		if !toRedis && quiet {
			t.Fatalf("a busy gate answered %s as quiet (it would hold the poller)", q)
		}
		return toRedis
	}

	g.wake() // busy
	g.empty(high, time.Now())
	g.found(medium)
	if looks(high) {
		t.Fatal("a queue just found empty was looked at again at once")
	}
	if !looks(medium) {
		t.Fatal("a queue a task was just found in was not looked at")
	}
	g.touch(QueueHigh)
	if !looks(high) {
		t.Fatal("a queue this process just enqueued into was not looked at")
	}
	g.empty(high, time.Now())
	time.Sleep(recheck + time.Millisecond)
	g.found(medium) // still busy
	if !looks(high) {
		t.Fatalf("an empty queue was not looked at again after %s", recheck)
	}
	g.empty(high, time.Now())
	g.wake()
	if !looks(high) {
		t.Fatal("an empty queue was not looked at after a wake-up")
	}
	// A look that was under way when this process enqueued there may
	// have missed the task: its "empty" does not count.
	sent := time.Now()
	g.touch(QueueHigh)
	g.empty(high, sent)
	if !looks(high) {
		t.Fatal("an empty answer older than an enqueue kept the queue from being looked at")
	}
}

// TestQuietGateHoldsThePollerUntilAWakeUp: a quiet gate holds asynq's
// poller in the dequeue call for at most quietWait, and a wake-up releases
// it at once to look.
func TestQuietGateHoldsThePollerUntilAWakeUp(t *testing.T) {
	_, g := testGate(t, time.Hour, 4*time.Millisecond)
	ctx := context.Background()
	start := time.Now()
	if g.wait(ctx, quietWait) {
		t.Fatal("wait reported a wake-up that never came")
	}
	if d := time.Since(start); d < quietWait {
		t.Fatalf("wait returned after %s, before quietWait (%s)", d, quietWait)
	}
	done := make(chan bool, 1)
	go func() { done <- g.wait(ctx, quietWait) }()
	for {
		g.wake()
		select {
		case woken := <-done:
			if !woken {
				t.Fatal("a held poller was not released by the wake-ups")
			}
			return
		case <-time.After(time.Millisecond):
		}
	}
}

// TestEnqueueHereReleasesAQuietPoller: a task this process enqueues is
// looked for at once, even by a poller that went quiet after the task's
// slot script ran (no wake-up comes then: the script found no wake key).
func TestEnqueueHereReleasesAQuietPoller(t *testing.T) {
	_, g := testGate(t, time.Hour, 4*time.Millisecond)
	ctx := context.Background()
	const q = "asynq:{high}:pending"
	if toRedis, _ := g.look(ctx, q); !toRedis {
		t.Fatal("going quiet: the gate did not look once")
	}
	if toRedis, quiet := g.look(ctx, q); toRedis || !quiet {
		t.Fatalf("quiet: look = (real %v, quiet %v), want (false, true)", toRedis, quiet)
	}
	done := make(chan bool, 1)
	go func() { done <- g.wait(ctx, quietWait) }()
	for {
		g.touch("high")
		select {
		case woken := <-done:
			if !woken {
				t.Fatal("the held poller was not released by the enqueue")
			}
			if toRedis, _ := g.look(ctx, q); !toRedis {
				t.Fatal("after an enqueue here, the released poller did not look at the queue")
			}
			return
		case <-time.After(time.Millisecond):
		}
	}
}

// TestEnqueueWakesAWorkerThatWentQuietMeanwhile: a worker in another
// process that armed the wake key after a task's slot script ran (the
// grant carries no wake-up) and looked before the task reached asynq is
// woken once the enqueue lands, instead of waiting for its idle check.
func TestEnqueueWakesAWorkerThatWentQuietMeanwhile(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	ctx := context.Background()
	d := NewDispatcher(&broker.Broker{Client: rdb, Prefix: "wt"}, time.Minute, Order{}, slog.New(slog.DiscardHandler))
	defer func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	}()
	ps := rdb.Subscribe(ctx, rediskeys.WakeChannel("wt"))
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	wakes := ps.Channel()

	// No worker waiting: no wake-up.
	if err := d.enqueue(ctx, 1, []Grant{{TaskID: 1, Priority: 2, At: time.Now().UnixMilli()}}); err != nil {
		t.Fatal(err)
	}
	// A worker arms the key after the slot script of task 2 ran.
	if err := setWakeKey(rdb, "wt")(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.enqueue(ctx, 1, []Grant{{TaskID: 2, Priority: 2, At: time.Now().UnixMilli()}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wakes:
	case <-time.After(5 * time.Second):
		t.Fatal("the worker that armed the wake key before the enqueue landed was not woken")
	}
	if mr.Exists(rediskeys.WakeArmed("wt")) {
		t.Fatal("the wake-up did not take the wake key")
	}
	select {
	case m := <-wakes:
		t.Fatalf("a second wake-up (%v): the first enqueue woke nobody waiting", m)
	default:
	}
}

// TestBusyGateReleasesAHeldPollerOnAnEnqueueHere: a busy gate holds
// asynq's poller at a queue it knows is empty (busyHold) instead of
// answering at once and letting asynq sleep; an enqueue in this process
// releases the hold, and the touched queue is looked at for real while
// the known-empty one is still answered here.
func TestBusyGateReleasesAHeldPollerOnAnEnqueueHere(t *testing.T) {
	g := newIdleGate(func(context.Context) error { return nil }, time.Hour, time.Hour, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	high, medium := rediskeys.AsynqPending(QueueHigh), rediskeys.AsynqPending(QueueMedium)
	g.busyUntil = time.Now().Add(time.Hour) // busy throughout, however slow the machine
	g.empty(high, time.Now())
	g.empty(medium, time.Now())
	var looked []string
	process := g.ProcessHook(func(_ context.Context, cmd redis.Cmder) error {
		q, _ := dequeueQueue(cmd)
		looked = append(looked, q)
		cmd.SetErr(redis.Nil)
		return redis.Nil
	})
	dequeue := func(q string) error {
		base := strings.TrimSuffix(q, ":pending")
		return process(ctx, redis.NewCmd(ctx, "evalsha", "sha", 4, q, base+":paused", base+":active", base+":lease", "0", "0"))
	}
	if err := dequeue(high); !errors.Is(err, redis.Nil) || len(looked) != 0 {
		t.Fatalf("busy, high known empty: err %v, looked %v; want an answer here", err, looked)
	}
	done := make(chan bool, 1)
	go func() { done <- g.wait(ctx, 30*time.Second) }()
	for released := false; !released; {
		g.touch(QueueMedium)
		select {
		case woken := <-done:
			if !woken {
				t.Fatal("the held poller was not released by the enqueue")
			}
			released = true
		case <-time.After(time.Millisecond):
		}
	}
	if err := dequeue(medium); !errors.Is(err, redis.Nil) || len(looked) != 1 || looked[0] != medium {
		t.Fatalf("after an enqueue into medium: looked %v; want a real look at %s", looked, medium)
	}
	if err := dequeue(high); len(looked) != 1 {
		t.Fatalf("high, still known empty, was looked at for real: %v (%v)", looked, err)
	}
}

// A busy gate holds asynq's poller at a queue known empty only when every
// queue is known empty: asynq dequeues one call at a time, so a hold at an
// empty high in front of a medium full of work made every task wait for
// it (a busy worker ran at most one task per busyHold).
func TestBusyGateHoldsOnlyWhenEveryQueueIsKnownEmpty(t *testing.T) {
	g := newIdleGate(func(context.Context) error { return nil }, time.Hour, time.Hour, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	g.busyUntil = time.Now().Add(time.Hour)
	process := g.ProcessHook(func(_ context.Context, cmd redis.Cmder) error {
		cmd.SetErr(redis.Nil)
		return redis.Nil
	})
	dequeue := func(q string) error {
		base := strings.TrimSuffix(q, ":pending")
		return process(ctx, redis.NewCmd(ctx, "evalsha", "sha", 4, q, base+":paused", base+":active", base+":lease", "0", "0"))
	}
	high := rediskeys.AsynqPending(QueueHigh)
	g.empty(high, time.Now())
	if err := dequeue(high); !errors.Is(err, redis.Nil) || g.holds.Load() != 0 {
		t.Fatalf("high known empty, medium and low unknown: err %v, holds %d; want an answer at once, no hold", err, g.holds.Load())
	}
	g.empty(rediskeys.AsynqPending(QueueMedium), time.Now())
	g.empty(rediskeys.AsynqPending(QueueLow), time.Now())
	if err := dequeue(high); !errors.Is(err, redis.Nil) || g.holds.Load() != 1 {
		t.Fatalf("every queue known empty: err %v, holds %d; want one hold", err, g.holds.Load())
	}
}

// TestEnqueueHereGoesStraightToItsQueue: a quiet gate whose queues were
// all found empty since it set the wake key, released by an enqueue in
// this process, answers the queues before that one locally (they are
// still empty: a grant elsewhere would have woken it) and asks Redis about
// the one enqueued into; after a wake-up it asks about every queue.
func TestEnqueueHereGoesStraightToItsQueue(t *testing.T) {
	mr, g := testGate(t, time.Hour, 4*time.Millisecond)
	ctx := context.Background()
	high, medium := rediskeys.AsynqPending("high"), rediskeys.AsynqPending("medium")
	quiet := func() {
		t.Helper()
		// Going quiet: the wake key is set, then each queue is looked at
		// once and found empty.
		for _, q := range g.queues {
			sent := time.Now()
			if toRedis, _ := g.look(ctx, q); !toRedis {
				t.Fatalf("going quiet: no look at %s", q)
			}
			g.empty(q, sent)
		}
		if toRedis, quiet := g.look(ctx, high); toRedis || !quiet {
			t.Fatalf("not quiet: look = (real %v, quiet %v)", toRedis, quiet)
		}
	}
	quiet()
	// An idle while: what the gate found is older than its recheck
	// interval, which alone would send the next look to Redis.
	time.Sleep(5 * g.recheck)
	g.touch("medium")
	if toRedis, _ := g.look(ctx, high); toRedis {
		t.Fatal("after an enqueue into medium here, the gate asked Redis about high, found empty since it went quiet")
	}
	if toRedis, _ := g.look(ctx, medium); !toRedis {
		t.Fatal("after an enqueue into medium here, the gate did not look at medium")
	}

	time.Sleep(2 * idleGrace)
	mr.Del(rediskeys.WakeArmed("gt"))
	quiet()
	time.Sleep(5 * g.recheck)
	g.wake() // a grant elsewhere
	g.touch("medium")
	if toRedis, _ := g.look(ctx, high); !toRedis {
		t.Fatal("after a wake-up, the gate did not look at high")
	}
}
