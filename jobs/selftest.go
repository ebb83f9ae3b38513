package jobs

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/llmsched/llm-scheduler/internal/rediskeys"
	"github.com/redis/go-redis/v9"
)

// The idle gate (wake.go) depends on two internals of asynq: the shape of
// its dequeue call (EVALSHA of a script with four keys: a queue's pending,
// paused, active and lease keys; asynq's internal/rdb Dequeue) and its key
// format (asynq:{queue}:pending; internal/base PendingKey). An asynq
// release that changed either would turn the gate off silently (its calls
// no longer recognised: the worker then polls every millisecond) or make
// it wrong. So a worker checks at start, on its real Redis, that the gate
// recognises asynq's actual dequeue call, and otherwise polls every
// queue.poll_interval without the gate (Worker.checkGate). And
// TestAsynqVersionIsTheVerifiedOne fails on any asynq but the one this
// was verified with, telling the upgrader what to check.

// verifiedAsynqVersion is the asynq release the gate was verified with.
const verifiedAsynqVersion = "v0.26.0"

// asynqModule is asynq's module path.
const asynqModule = "github.com/hibiken/asynq"

// asynqVersion is the asynq version built into this binary, or "unknown".
func asynqVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, d := range bi.Deps {
		if d.Path == asynqModule {
			if d.Replace != nil {
				return d.Replace.Path + "@" + d.Replace.Version
			}
			return d.Version
		}
	}
	return "unknown"
}

// gateProbe is the self-test in progress: the dequeue calls of a probe
// asynq server on a queue of its own.
type gateProbe struct {
	queue string
	key   string // what the gate must recognise: rediskeys.AsynqPending(queue)
	seen  chan struct{}
	once  sync.Once
	mu    sync.Mutex
	calls []string // script calls that named the probe queue, for the warning
}

// saw reports whether cmd is a call of the probe server on the probe
// queue (not to be gated), and notes whether the gate recognised it as
// asynq's dequeue call of that queue.
func (p *gateProbe) saw(cmd redis.Cmder, recognise func(redis.Cmder) (string, bool)) bool {
	args := cmd.Args()
	mentions := false
	for _, a := range args {
		if s, ok := a.(string); ok && strings.Contains(s, p.queue) {
			mentions = true
			break
		}
	}
	if !mentions {
		return false
	}
	if q, ok := recognise(cmd); ok && q == p.key {
		p.once.Do(func() { close(p.seen) })
		return true
	}
	if shape, ok := scriptShape(args); ok {
		p.mu.Lock()
		if len(p.calls) < 8 && !slices.Contains(p.calls, shape) {
			p.calls = append(p.calls, shape)
		}
		p.mu.Unlock()
	}
	return true
}

// scriptShape is a script call without its script and arguments: the
// command, the number of keys and the keys.
func scriptShape(args []any) (string, bool) {
	if len(args) < 3 || !strings.HasPrefix(strings.ToLower(fmt.Sprint(args[0])), "eval") {
		return "", false
	}
	n, ok := args[2].(int)
	if !ok || n < 0 || 3+n > len(args) {
		return "", false
	}
	return fmt.Sprint(args[0], " ", n, " ", args[3:3+n]), true
}

// probeWait bounds how long the self-test waits for the probe's first
// dequeue call (asynq makes it right after start; the wait only runs out
// when the gate does not recognise it).
const probeWait = 5 * time.Second

// selfTest starts an asynq server on the gated client with one queue of
// its own (nobody enqueues there, so it runs nothing), and waits until the
// gate has recognised the server's dequeue call on that queue. It returns
// nil if it did, else what it saw.
func (w *Worker) selfTest() error {
	q := "llmsched-gate-probe-" + rand.Text()
	p := &gateProbe{queue: q, key: rediskeys.AsynqPending(q), seen: make(chan struct{})}
	w.gate.probe.Store(p)
	defer w.gate.probe.Store(nil)
	srv := asynq.NewServerFromRedisClient(w.asynqRDB, asynq.Config{
		Concurrency:       1,
		Queues:            map[string]int{q: 1},
		TaskCheckInterval: 5 * time.Millisecond,
		ShutdownTimeout:   time.Second,
		Logger:            asynqLogger{w.log},
		LogLevel:          asynq.WarnLevel,
	})
	err := srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		return errors.New("the gate's probe server runs no task")
	}))
	if err != nil {
		return fmt.Errorf("start the probe server: %w", err)
	}
	defer srv.Shutdown()
	select {
	case <-p.seen:
		return nil
	case <-time.After(probeWait):
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Errorf("within %s the gate recognised no dequeue call of asynq's on the probe queue %q (expected EVALSHA with 4 keys, the first %q); its script calls (keys only): %q",
		probeWait, q, p.key, p.calls)
}

// checkGate runs the self-test; if the gate does not recognise asynq's
// dequeue call it logs one warning and the worker polls instead.
func (w *Worker) checkGate() {
	err := w.selfTest()
	if err == nil {
		return
	}
	w.log.Warn("idle gate off: it does not recognise asynq's dequeue call, so idle workers poll every queue.poll_interval instead of being woken; "+
		"re-verify jobs/wake.go (dequeueQueue) and internal/rediskeys (AsynqPending) against this asynq",
		"asynq", asynqVersion(), "verified_with", verifiedAsynqVersion, "poll_interval", w.pollInterval, "err", err)
	w.pollInstead()
}

// pollInstead drops the gate: asynq runs on the broker's client and polls
// every queue.poll_interval.
func (w *Worker) pollInstead() {
	w.disp.enqueued.Store(nil)
	if err := w.asynqRDB.Close(); err != nil {
		w.log.Warn("close the worker's gated redis client", "err", err)
	}
	w.gate, w.asynqRDB = nil, nil
	w.serverCfg.TaskCheckInterval = w.pollInterval
	w.server = asynq.NewServerFromRedisClient(w.plainRDB, w.serverCfg)
}
