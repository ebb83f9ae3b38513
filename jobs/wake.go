package jobs

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llmsched/llm-scheduler/internal/rediskeys"
	"github.com/redis/go-redis/v9"
)

// Wake-ups. asynq's processor finds work by polling: after an empty look
// it sleeps about TaskCheckInterval and runs its dequeue script again, once
// per queue, three Redis commands each. Polling trades idle pickup latency
// against idle Redis load, and on a busy host neither side of the trade is
// good enough (a 4 ms poll costs ~2,000 commands/s and still waits up to
// 6 ms).
//
// So the worker polls fast (wokenPoll) while work arrives and not at all
// while idle. Its asynq server's Redis client carries a hook (idleGate)
// that answers asynq's dequeue calls itself, "queue empty", once nothing
// was found for idleGrace, holding the poller up to quietWait per call
// unless a wake-up comes first (then it looks at once). Before it goes quiet it sets the wake key; the
// slot script that next hands out a slot takes the key (Slots.wake), and
// the dispatcher that enqueues that task publishes on the wake channel
// once the task is in asynq. Every subscribed worker wakes and polls.
//
// On Redis Cluster a slot script may touch keys of one hash slot only, so
// each model has a wake key in its own hash slot, and a worker going quiet
// sets every model's (Worker.armWake: one pipelined SET per model, sent to
// each master once).
//
// A wake-up can be lost: a worker that is not subscribed yet, a publisher
// that stopped between its slot call and its enqueue, a task enqueued in
// the instant a worker goes quiet. Work asynq makes due by itself (retries
// whose backoff ended) wakes nobody either. So an idle worker still looks
// every idle_check_interval, and sets the wake key again each time: what a
// lost wake-up costs is bounded by that interval.
//
// While busy the gate also spares looks at queues it knows are empty: a
// dequeue looks at `high` before `medium` every time (one script call per
// task spent on an empty queue), and a worker with a free handler polls
// every wokenPoll while the task for it is still being enqueued. A queue
// found empty is answered locally for the recheck interval
// (queue.poll_interval), unless a wake-up arrives or this process enqueues
// into it (touch): a task put there by another process is seen at most
// that much later, as with plain polling.
const (
	wokenPoll = time.Millisecond
	idleGrace = 5 * time.Millisecond
)

// idleGate is the go-redis hook on a worker's asynq client.
type idleGate struct {
	// arm sets the wake key (or on Redis Cluster every model's wake key),
	// through a client without the hook.
	arm     func(context.Context) error
	check   time.Duration // idle: look at least this often
	recheck time.Duration // busy: look again at an empty queue this often
	log     *slog.Logger

	mu        sync.Mutex
	busyUntil time.Time
	armedAt   time.Time            // when the wake key was last set; zero once a wake-up took it
	lastLook  map[string]time.Time // real looks while quiet, by queue
	emptyAt   map[string]time.Time // while busy: when a queue was last found empty
	touchedAt map[string]time.Time // when this process last enqueued into a queue
	wokenAt   time.Time
	wakeSig   chan struct{} // closed (and replaced) by every wake-up
	stopped   chan struct{} // closed by stop: hold no call any more
	stopOnce  sync.Once
	onWake    func() // called on every wake-up, when set

	// recognise finds asynq's dequeue call (recogniseDequeue).
	recognise func(redis.Cmder) (string, bool)
	// probe, while the self-test runs, is the probe queue's pending key
	// (selftest.go).
	probe atomic.Pointer[gateProbe]

	// queues are the pending keys of every queue the worker dequeues
	// from: a busy gate holds the poller only when all of them are known
	// empty (roundEmpty).
	queues []string

	answered atomic.Int64 // dequeue calls answered without Redis
	holds    atomic.Int64 // dequeue calls held while busy (busyHold)
}

// setWakeKey is the arm of a gate on one Redis server (or Sentinel): the
// one wake key under prefix.
func setWakeKey(rdb redis.UniversalClient, prefix string) func(context.Context) error {
	key := rediskeys.WakeArmed(prefix)
	return func(ctx context.Context) error { return rdb.Set(ctx, key, "1", 0).Err() }
}

func newIdleGate(arm func(context.Context) error, check, recheck time.Duration, log *slog.Logger) *idleGate {
	return &idleGate{arm: arm, check: check, recheck: recheck, log: log,
		lastLook: map[string]time.Time{}, emptyAt: map[string]time.Time{}, touchedAt: map[string]time.Time{},
		wakeSig: make(chan struct{}), stopped: make(chan struct{}), recognise: recogniseDequeue,
		queues: pendingKeys(Queues())}
}

func pendingKeys(queues []string) []string {
	keys := make([]string, len(queues))
	for i, q := range queues {
		keys[i] = rediskeys.AsynqPending(q)
	}
	return keys
}

// stop releases a held poller and answers every later dequeue call at
// once, so that asynq's shutdown, which waits for the call in progress,
// does not wait for quietWait.
func (g *idleGate) stop() { g.stopOnce.Do(func() { close(g.stopped) }) }

// DialHook implements redis.Hook.
func (g *idleGate) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessPipelineHook implements redis.Hook.
func (g *idleGate) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// ProcessHook implements redis.Hook: it answers asynq's dequeue calls
// while the worker is quiet, and lets every other command through.
func (g *idleGate) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if p := g.probe.Load(); p != nil && p.saw(cmd, g.recognise) {
			return next(ctx, cmd) // the self-test's probe: never gated
		}
		q, ok := g.recognise(cmd)
		if !ok {
			return next(ctx, cmd)
		}
		held := false
		for {
			select {
			case <-g.stopped:
				g.answered.Add(1)
				cmd.SetErr(redis.Nil)
				return redis.Nil
			default:
			}
			toRedis, quiet := g.look(ctx, q)
			if toRedis {
				break
			}
			switch {
			case quiet && g.wait(ctx, quietWait):
				// Quiet: asynq's poller was held here until a wake-up
				// (now look at once) instead of spinning through empty
				// answers every wokenPoll.
				continue
			case !quiet && !held && g.roundEmpty():
				// Busy, and every queue is known empty: hold the poller
				// for up to busyHold, released at once when this process
				// enqueues (touch) or a wake-up comes, so that a task
				// enqueued meanwhile is picked up then, not after asynq's
				// sleep between polls. Once per call: then on to the
				// next queue. Never while another queue may hold work:
				// asynq dequeues one call at a time, so a hold at an
				// empty `high` in front of a full `medium` capped a busy
				// worker at one task per busyHold.
				held = true
				g.holds.Add(1)
				if g.wait(ctx, busyHold) {
					continue
				}
			}
			g.answered.Add(1)
			cmd.SetErr(redis.Nil)
			return redis.Nil
		}
		sent := time.Now()
		err := next(ctx, cmd)
		switch {
		case err == nil:
			g.found(q) // more may follow
		case errors.Is(err, redis.Nil):
			g.empty(q, sent)
		}
		return err
	}
}

// quietWait bounds how long a quiet gate holds asynq's poller in one
// dequeue call, and busyHold how long a busy one holds it at a queue known
// empty. Each release costs a round of asynq's loop, so an idle worker
// holds long; asynq's shutdown waits for the call in progress, which
// Worker.Shutdown releases first (stop).
const (
	quietWait = time.Second
	busyHold  = wokenPoll
)

// gatedPoll is asynq's TaskCheckInterval behind a gate: its sleep after
// an empty round. The gate paces the poller itself (busyHold, quietWait),
// so asynq's sleep is short: a task enqueued during it waits for it.
const gatedPoll = 200 * time.Microsecond

// wait holds the caller until a wake-up or a touch (true) or for up to
// d (false).
func (g *idleGate) wait(ctx context.Context, d time.Duration) bool {
	g.mu.Lock()
	sig := g.wakeSig
	g.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-sig:
		return true
	case <-t.C:
	case <-ctx.Done():
	case <-g.stopped:
	}
	return false
}

// look decides whether a dequeue call goes to Redis (real), and whether
// the worker is quiet (idle, not merely skipping an empty queue).
func (g *idleGate) look(ctx context.Context, queue string) (toRedis, quiet bool) {
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if now.Before(g.busyUntil) {
		at, known := g.emptyAt[queue]
		return !known || now.Sub(at) >= g.recheck, false
	}
	if g.armedAt.IsZero() || now.Sub(g.armedAt) >= g.check {
		// Going quiet, or quiet for another check interval: set the wake
		// key first, then look once more at every queue, so that a task
		// enqueued before the key was set is found now and one enqueued
		// after it wakes us.
		if err := g.arm(ctx); err != nil {
			g.log.Warn("set the wake key; polling instead", "err", err)
			return true, false
		}
		g.armedAt = now
		clear(g.lastLook)
	}
	if last, ok := g.lastLook[queue]; ok && now.Sub(last) < g.check {
		return false, true
	}
	g.lastLook[queue] = now
	return true, false
}

// roundEmpty reports whether a busy gate knows every queue to be empty
// (found empty within the recheck interval), so that a whole round of
// asynq's dequeue would find nothing.
func (g *idleGate) roundEmpty() bool {
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, q := range g.queues {
		at, known := g.emptyAt[q]
		if !known || now.Sub(at) >= g.recheck {
			return false
		}
	}
	return true
}

// found records a task dequeued from queue: keep polling for idleGrace.
func (g *idleGate) found(queue string) {
	g.mu.Lock()
	g.busyUntil = time.Now().Add(idleGrace)
	delete(g.emptyAt, queue)
	g.mu.Unlock()
}

// empty records that Redis found queue empty, looking at it at sent;
// unless a task was enqueued there (or a wake-up came) since, which the
// look may have missed.
func (g *idleGate) empty(queue string, sent time.Time) {
	g.mu.Lock()
	if !g.touchedAt[queue].After(sent) && !g.wokenAt.After(sent) {
		g.emptyAt[queue] = time.Now()
	}
	g.mu.Unlock()
}

// touch is called when this process enqueued into the asynq queue named
// qname: look there again at once. A quiet poller is released as by a
// wake-up: the slot script may have run before this worker armed the wake
// key (so no wake-up comes) and the enqueue landed after its last look.
func (g *idleGate) touch(qname string) {
	q := rediskeys.AsynqPending(qname)
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	if !now.Before(g.busyUntil) && !g.armedAt.IsZero() {
		// Quiet, and no wake-up since the wake key was set: a queue found
		// empty since then is still empty but for what this process puts
		// there (a grant elsewhere takes the key and wakes us). The
		// released poller goes straight to q instead of asking Redis about
		// each queue before it again: at idle that was one more script
		// call on every pickup.
		for _, other := range g.queues {
			if at, ok := g.emptyAt[other]; ok && other != q && !at.Before(g.armedAt) {
				g.emptyAt[other] = now
			}
		}
	}
	delete(g.emptyAt, q)
	g.touchedAt[q] = now
	if !now.Before(g.busyUntil) {
		g.busyUntil = now.Add(idleGrace)
		g.armedAt = time.Time{}
	}
	// Release a poller held at a queue (quiet, or busy at one known
	// empty): the deleted emptyAt makes it look here.
	close(g.wakeSig)
	g.wakeSig = make(chan struct{})
}

// wake is a wake-up: a task was enqueued, and its slot script took the
// wake key.
func (g *idleGate) wake() {
	g.mu.Lock()
	g.wokenAt = time.Now()
	g.busyUntil = g.wokenAt.Add(idleGrace)
	g.armedAt = time.Time{}
	clear(g.emptyAt)
	close(g.wakeSig) // release a poller held in wait
	g.wakeSig = make(chan struct{})
	g.mu.Unlock()
	if g.onWake != nil {
		g.onWake()
	}
}

// listen delivers wake-ups until ctx ends. go-redis resubscribes after a
// lost connection; what is missed meanwhile the idle checks find.
func (g *idleGate) listen(ctx context.Context, rdb redis.UniversalClient, channel string) {
	ps := rdb.Subscribe(ctx, channel)
	defer ps.Close()
	ch := ps.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-ch:
			if !ok {
				return
			}
			g.wake()
		}
	}
}

// recogniseDequeue is how a gate recognises asynq's dequeue call: a
// variable so that a test can break it (export_test.go).
var recogniseDequeue = dequeueQueue

// dequeueQueue recognizes asynq's dequeue script call (EVALSHA with its
// four keys: pending, paused, active and lease of one queue) and returns
// the queue's pending key. EVAL is never gated: go-redis sends it right
// after an EVALSHA that Redis answered NOSCRIPT (a Redis that lost its
// script cache), and answering it locally would keep the script from ever
// being loaded again.
func dequeueQueue(cmd redis.Cmder) (string, bool) {
	args := cmd.Args()
	if len(args) < 7 {
		return "", false
	}
	if name, _ := args[0].(string); !strings.EqualFold(name, "evalsha") {
		return "", false
	}
	if n, ok := args[2].(int); !ok || n != 4 {
		return "", false
	}
	for i, suffix := range [4]string{":pending", ":paused", ":active", ":lease"} {
		k, ok := args[3+i].(string)
		if !ok || !strings.HasSuffix(k, suffix) {
			return "", false
		}
	}
	return args[3].(string), true
}
