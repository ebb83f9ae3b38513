package jobs

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// wakeModelsTTL is how long armWake reuses its list of models (until the
// next wake-up). A model created since has no wake key set, but its first
// grant in each process wakes the workers anyway (Dispatcher.enqueue),
// which then read the list again.
const wakeModelsTTL = time.Second

// armWake sets the wake key of every model (Redis Cluster: one per hash
// slot of a model, see Slots.wakePerModel), in one pipeline that the
// cluster client splits by master.
func (w *Worker) armWake(ctx context.Context) error {
	w.wakeMu.Lock()
	if time.Since(w.wakeModelsAt) >= wakeModelsTTL {
		ms, err := w.svc.ListModels(ctx)
		if err != nil {
			w.wakeMu.Unlock()
			return fmt.Errorf("list models to wake: %w", err)
		}
		w.wakeModels = w.wakeModels[:0]
		for _, m := range ms {
			w.wakeModels = append(w.wakeModels, m.ID)
		}
		w.wakeModelsAt = time.Now()
	}
	ids := slices.Clone(w.wakeModels)
	w.wakeMu.Unlock()
	if len(ids) == 0 {
		return nil
	}
	pipe := w.disp.rdb.Pipeline()
	for _, id := range ids {
		pipe.Set(ctx, w.disp.slots.wakeKeyOf(id), "1", 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("set the wake keys of %d models: %w", len(ids), err)
	}
	return nil
}

// stopWakeUps ends the wake-up listener and closes asynq's client, once.
func (w *Worker) stopWakeUps() {
	if w.gate == nil || w.asynqRDB == nil {
		return
	}
	if w.stopWake != nil {
		w.stopWake()
		<-w.wakeDone
		w.stopWake = nil
	}
	if err := w.asynqRDB.Close(); err != nil {
		w.log.Warn("close the worker's asynq redis client", "err", err)
	}
	w.asynqRDB = nil
}
