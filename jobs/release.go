package jobs

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/internal/batch"
)

// releaser hands finished tasks' slots on in the background, batched
// (internal/batch): the releases that queue up while one slot call is in
// flight go together in the next, one call per model (Slots.ReleaseMany).
// A handler then returns to asynq for its next task at once, and under
// load a slot hand-off costs a fraction of a script call per task instead
// of one (on the embedded Redis a script call builds a whole Lua
// interpreter). Alone, a release goes out at once, as before.
//
// The worker starts it (NewWorker) and stops it (Shutdown), which sends
// what is still queued; a release after that is sent by its caller.
type releaser struct {
	disp *Dispatcher
	log  *slog.Logger
	// inflight is the worker's: Shutdown waits until queued releases are
	// done.
	inflight *sync.WaitGroup
	batches  *batch.Batcher[release]
}

// release is one task's slot on model m to hand on.
type release struct {
	m  *ent.Model
	id int
}

func newReleaser(disp *Dispatcher, log *slog.Logger, inflight *sync.WaitGroup) *releaser {
	r := &releaser{disp: disp, log: log, inflight: inflight}
	r.batches = batch.New(r.releaseAll)
	return r
}

func (r *releaser) start() { _ = r.batches.Start(context.Background()) }

// stop sends the releases still queued and stops the background loop.
func (r *releaser) stop() { _ = r.batches.Stop(context.Background()) }

// add queues the release of task id's slot on model m.
func (r *releaser) add(m *ent.Model, id int) {
	r.inflight.Add(1)
	r.batches.Add(release{m: m, id: id})
}

// releaseAll releases a batch, one call per model.
func (r *releaser) releaseAll(_ context.Context, rs []release) {
	if len(rs) == 1 {
		r.flush(rs[0].m, []int{rs[0].id})
		return
	}
	byModel := map[int][]int{}
	models := map[int]*ent.Model{}
	for _, x := range rs {
		byModel[x.m.ID] = append(byModel[x.m.ID], x.id)
		models[x.m.ID] = x.m
	}
	for id, ids := range byModel {
		r.flush(models[id], ids)
	}
}

func (r *releaser) flush(m *ent.Model, ids []int) {
	defer r.inflight.Add(-len(ids))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	granted, err := r.disp.slots.ReleaseMany(ctx, m.ID, capacity(m), ids)
	if err == nil {
		err = r.disp.enqueue(ctx, m.ID, granted)
	}
	if err != nil {
		// The leases expire after lease_ttl and the reconciler hands the
		// slots on then.
		r.log.Error("release model slots", "model_id", m.ID, "tasks", ids, "err", err)
	}
}
