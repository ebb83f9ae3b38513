package jobs

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/providers"

	"github.com/redis/go-redis/v9"
)

// LeasesKey names a model's lease set in Redis, for tests that move slots
// behind the scheduler's back.
func LeasesKey(d *Dispatcher, modelID int) string { return d.slots.keys(modelID)[1] }

// GateAnswered counts the dequeue calls a worker's idle gate answered
// without Redis; -1 when the worker has no gate (wake-ups off).
func GateAnswered(w *Worker) int64 {
	if w.gate == nil {
		return -1
	}
	return w.gate.answered.Load()
}

// ParkedKeys names a model's parked queue (tail and head) in Redis.
func ParkedKeys(d *Dispatcher, modelID int) []string {
	k := d.slots.keys(modelID)
	return []string{k[0], k[3]}
}

// SetSweep sets how many pending tasks a reconcile round sweeps.
func SetSweep(r *Reconciler, n int) { r.sweep = n }

// BreakDequeueRecognition makes the idle gates built until the test ends
// recognise no dequeue call, as after an asynq upgrade that changed it.
func BreakDequeueRecognition(t testing.TB) {
	old := recogniseDequeue
	recogniseDequeue = func(redis.Cmder) (string, bool) { return "", false }
	t.Cleanup(func() { recogniseDequeue = old })
}

// PollInterval is how often a worker's asynq server polls an empty queue.
func PollInterval(w *Worker) time.Duration { return w.serverCfg.TaskCheckInterval }

// GatedPoll is asynq's sleep between polls behind an idle gate.
const GatedPoll = gatedPoll

// FairShareKeys names a model's fair-share state in Redis: the hash of
// the round robin and the bands' clocks, and the sorted set of the
// callers' last tags.
func FairShareKeys(d *Dispatcher, modelID int) (clocks, callers string) {
	k := d.slots.keys(modelID)
	return k[4], k[5]
}

// SetWalkPage sets how many tasks the reconciler reads at a time, until
// the test ends.
func SetWalkPage(t testing.TB, n int) {
	old := walkPage
	walkPage = n
	t.Cleanup(func() { walkPage = old })
}

// CountRequestBuilds counts, per task, the provider requests built until
// the test ends. Call it before the workers start (before apptest.New, so
// that it is restored after they stopped).
func CountRequestBuilds(t testing.TB) (builds func(taskID int) int) {
	var mu sync.Mutex
	n := map[int]int{}
	old := buildRequest
	buildRequest = func(taskID, attempt int, typ domain.TaskType, input string, params map[string]any) (providers.Request, error) {
		mu.Lock()
		n[taskID]++
		mu.Unlock()
		return old(taskID, attempt, typ, input, params)
	}
	t.Cleanup(func() { buildRequest = old })
	return func(id int) int {
		mu.Lock()
		defer mu.Unlock()
		return n[id]
	}
}

// RecordSweepRests records the rests the reconciler takes between the
// pages of a sweep (and still takes them).
func RecordSweepRests(r *Reconciler) (rests func() []time.Duration) {
	var mu sync.Mutex
	var got []time.Duration
	inner := r.rest
	r.rest = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		got = append(got, d)
		mu.Unlock()
		return inner(ctx, d)
	}
	return func() []time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

// BeforeHeld has a reconciler run f before each read of what Redis holds
// of a page of tasks: a test's way into the middle of a round.
func BeforeHeld(r *Reconciler, f func(ctx context.Context)) { r.beforeHeld = f }

// MarkKey names a model's epoch marker (Redis Cluster); "" where the
// slot scripts use none.
func MarkKey(d *Dispatcher, modelID int) string {
	if !d.slots.modelMarks {
		return ""
	}
	return d.slots.markKeyOf(modelID)
}
