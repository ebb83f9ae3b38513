package jobs

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// State is a task's place in its model's slot state.
type State struct {
	Parked       bool
	Position     int
	Leased       bool
	Running      int
	BackoffUntil int64
}

// StateOf reads where a task waits.
func (s *Slots) StateOf(ctx context.Context, modelID, taskID int) (State, error) {
	k := s.keys(modelID)
	id := strconv.Itoa(taskID)
	pipe := s.rdb.Pipeline()
	headRank := pipe.ZRank(ctx, k[3], id)
	headLen := pipe.ZCard(ctx, k[3])
	rankCmd := pipe.ZRank(ctx, k[0], id)
	leaseCmd := pipe.ZScore(ctx, k[1], id)
	countCmd := pipe.ZCount(ctx, k[1], strconv.FormatInt(s.now(), 10), "+inf")
	boCmd := pipe.Get(ctx, k[2])
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return State{}, fmt.Errorf("read slot state of task %d: %w", taskID, err)
	}
	var st State
	if r, err := headRank.Result(); err == nil {
		st.Parked, st.Position = true, int(r)+1
	} else if r, err := rankCmd.Result(); err == nil {
		st.Parked, st.Position = true, int(headLen.Val())+int(r)+1
	}
	if _, err := leaseCmd.Result(); err == nil {
		st.Leased = true
	}
	st.Running = int(countCmd.Val())
	st.BackoffUntil, _ = boCmd.Int64()
	return st, nil
}

// Presence reports, for each task, whether Redis knows it as parked or leased.
func (s *Slots) Presence(ctx context.Context, modelID int, ids []int) (map[int]bool, error) {
	k := s.keys(modelID)
	pipe := s.rdb.Pipeline()
	type trio struct{ head, parked, leased *redis.FloatCmd }
	cmds := make([]trio, len(ids))
	for i, id := range ids {
		m := strconv.Itoa(id)
		cmds[i] = trio{pipe.ZScore(ctx, k[3], m), pipe.ZScore(ctx, k[0], m), pipe.ZScore(ctx, k[1], m)}
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read presence of model %d tasks: %w", modelID, err)
	}
	out := make(map[int]bool, len(ids))
	for i, id := range ids {
		out[id] = cmds[i].head.Err() == nil || cmds[i].parked.Err() == nil || cmds[i].leased.Err() == nil
	}
	return out, nil
}

// Leased reports, for each task, whether it holds a live model slot lease.
func (s *Slots) Leased(ctx context.Context, modelID int, ids []int) (map[int]bool, error) {
	k := s.keys(modelID)
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.FloatCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.ZScore(ctx, k[1], strconv.Itoa(id))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read leases of model %d tasks: %w", modelID, err)
	}
	now := float64(s.now())
	out := make(map[int]bool, len(ids))
	for i, id := range ids {
		score, err := cmds[i].Result()
		out[id] = err == nil && score > now
	}
	return out, nil
}
