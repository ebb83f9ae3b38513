package jobs

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/llmsched/llm-scheduler/ent"
)

// releaser hands finished tasks' slots on in the background, batched: the
// releases that queue up while one slot call is in flight go together in
// the next, one call per model (Slots.ReleaseMany). A handler then returns
// to asynq for its next task at once, and under load a slot hand-off costs
// a fraction of a script call per task instead of one (on the embedded
// Redis a script call builds a whole Lua interpreter). Alone, a release
// goes out at once, as before.
type releaser struct {
	disp *Dispatcher
	log  *slog.Logger
	// inflight is the worker's: Shutdown waits until queued releases are
	// done.
	inflight *sync.WaitGroup

	mu      sync.Mutex
	pending map[int][]int // task ids by model id
	models  map[int]*ent.Model
	running bool
}

func newReleaser(disp *Dispatcher, log *slog.Logger, inflight *sync.WaitGroup) *releaser {
	return &releaser{disp: disp, log: log, inflight: inflight, pending: map[int][]int{}, models: map[int]*ent.Model{}}
}

// add queues the release of task id's slot on model m.
func (r *releaser) add(m *ent.Model, id int) {
	r.inflight.Add(1)
	r.mu.Lock()
	r.pending[m.ID] = append(r.pending[m.ID], id)
	r.models[m.ID] = m
	start := !r.running
	r.running = true
	r.mu.Unlock()
	if start {
		go r.loop()
	}
}

// loop releases batches until none is queued.
func (r *releaser) loop() {
	for {
		r.mu.Lock()
		if len(r.pending) == 0 {
			r.running = false
			r.mu.Unlock()
			return
		}
		batch, models := r.pending, r.models
		r.pending, r.models = map[int][]int{}, map[int]*ent.Model{}
		r.mu.Unlock()
		for modelID, ids := range batch {
			r.flush(models[modelID], ids)
		}
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
