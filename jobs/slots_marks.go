package jobs

// The epoch guard: no slot is handed out while Redis has lost the leases
// of running tasks, or a model would run more than max_workers tasks at
// once. One Redis checks the epoch key; Redis Cluster checks a marker per
// model, in the model's hash slot.

import (
	"context"
	"fmt"
	"time"

	"github.com/llmsched/llm-scheduler/internal/rediskeys"
	"github.com/redis/go-redis/v9"
)

// grantable is how many slots of a model may be held: max, or 0 while
// Redis has lost its data and the reconciler has not re-established it.
func (s *Slots) grantable(ctx context.Context, limit int) (int, error) {
	if limit == 0 || s.epoch == "" {
		return limit, nil
	}
	n, err := s.rdb.Exists(ctx, s.epoch).Result()
	if err != nil {
		return 0, fmt.Errorf("read epoch: %w", err)
	}
	if n == 0 {
		return 0, nil
	}
	return limit, nil
}

// markKeyOf is a model's epoch marker (Redis Cluster): it exists while
// the model's lease set is whole. Only markModel and the reconciler write
// it, and a flush or failover that loses the model's keys loses it with
// them.
func (s *Slots) markKeyOf(modelID int) string { return rediskeys.ModelOf(s.prefix, modelID).Mark() }

// markedKey is the set of models ever marked, in the epoch key's hash
// slot (see rediskeys.Marked).
func (s *Slots) markedKey() string { return rediskeys.Marked(s.prefix) }

// markModel writes the marker of a model that was never marked (see
// markScript). It reports whether it did.
func (s *Slots) markModel(ctx context.Context, modelID int) (bool, error) {
	n, err := markScript.Run(ctx, s.rdb, []string{s.epoch, s.markedKey()}, modelID).Int()
	if err != nil {
		return false, fmt.Errorf("mark model %d: %w", modelID, err)
	}
	if n == 0 {
		return false, nil
	}
	if err := s.rdb.Set(ctx, s.markKeyOf(modelID), time.Now().UnixMilli(), 0).Err(); err != nil {
		return false, fmt.Errorf("write model %d marker: %w", modelID, err)
	}
	return true, nil
}

// remark writes the markers of models whose leases are whole again (the
// reconciler, after a flush or a lost shard) and adds them to the marked
// set.
func (s *Slots) remark(ctx context.Context, modelIDs []int) error {
	if len(modelIDs) == 0 {
		return nil
	}
	pipe := s.rdb.Pipeline()
	now := time.Now().UnixMilli()
	members := make([]any, len(modelIDs))
	for i, id := range modelIDs {
		pipe.Set(ctx, s.markKeyOf(id), now, 0)
		members[i] = id
	}
	pipe.SAdd(ctx, s.markedKey(), members...)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("write model markers: %w", err)
	}
	return nil
}

// unmarked splits models whose marker is missing into those never marked
// (fresh) and those that were (lost: their keys are gone).
func (s *Slots) unmarked(ctx context.Context, modelIDs []int) (fresh, lost []int, err error) {
	pipe := s.rdb.Pipeline()
	marks := make([]*redis.IntCmd, len(modelIDs))
	in := make([]*redis.BoolCmd, len(modelIDs))
	for i, id := range modelIDs {
		marks[i] = pipe.Exists(ctx, s.markKeyOf(id))
		in[i] = pipe.SIsMember(ctx, s.markedKey(), id)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, nil, fmt.Errorf("read model markers: %w", err)
	}
	for i, id := range modelIDs {
		if marks[i].Val() == 1 {
			continue
		}
		if in[i].Val() {
			lost = append(lost, id)
		} else {
			fresh = append(fresh, id)
		}
	}
	return fresh, lost, nil
}

// unmarkedModel is after a slot script call that found the model's marker
// missing (modelMarks): a model never marked is marked now and its free
// slots filled (see markScript). A model that lost its marker waits for
// the reconciler.
func (s *Slots) unmarkedModel(ctx context.Context, modelID, limit int) ([]Grant, error) {
	if !s.modelMarks || limit == 0 {
		return nil, nil
	}
	ok, err := s.markModel(ctx, modelID)
	if err != nil || !ok {
		return nil, err
	}
	return s.Pump(ctx, modelID, limit)
}
