package jobs

import (
	"testing"
	"time"

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
