package jobs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/internal/rediskeys"
)

// rankBand separates priorities in a parked queue's score: a higher
// priority has a lower band (band 4-priority). Within a band the score is
// the task's fair-share tag (see fairShare).
const rankBand = 1e15

// band is a priority's band number: 1 high, 2 medium, 3 low.
func band(priority int) int { return 4 - priority }

// fairShare is the virtual time one task of weight 1 takes in its band.
// Inside one priority of one model, free slots go to callers in turn by
// start-time fair queuing, computed in the slot scripts as tasks are
// parked: each band keeps a virtual time V (the tag of the task it last
// handed a slot to) and each caller its last tag L; a new task's tag is
// max(V, L) + fairShare/weight. Tags grow by the same step for every task
// of a caller, so a caller's tasks keep FIFO; a caller arriving behind a
// flood starts at V, right behind the task now running, and a caller of
// weight 3 gets three tags in the span of one of weight 1. The parked
// queue stays one sorted set per model, so a hand-off stays O(log n) and
// a task's rank is how many tasks will take a slot before it. When a band
// runs empty its clock starts again from 0 (a new generation), so tags
// stay small. Weights are at most 1000: a step is at least 1000.
const fairShare = 1e6

func priorityOf(score float64) int { return 4 - int(score/rankBand) }

// fairKey is the caller a task takes turns as: its API key, else its
// caller label.
func fairKey(t *ent.Task) string {
	if t.APIKeyID != nil {
		return "k" + strconv.Itoa(*t.APIKeyID)
	}
	return "c" + t.Caller
}

// itemOf is a task as the slot scripts park it.
func itemOf(t *ent.Task) admitItem {
	return admitItem{ID: t.ID, Priority: t.Priority, Caller: fairKey(t), Weight: max(t.Weight, 1)}
}

// Grant is a task that was just given a slot, or whose lease was just
// renewed.
type Grant struct {
	TaskID   int
	Priority int
	// At is when the lease was given or renewed (unix ms, the script's
	// now): it runs until At plus the lease TTL.
	At int64
	// Wake is set on every grant of a script call that found idle workers
	// waiting to be woken (see wake.go): whoever enqueues the grant
	// publishes a wake-up once it is in asynq.
	Wake bool
}

// Slots is the per-model concurrency state in Redis.
type Slots struct {
	rdb    redis.UniversalClient
	prefix string
	ttl    time.Duration
	// epoch is the reconciler's epoch key. While it is missing, Redis has
	// lost its data (restart, failover) and the leases of tasks still
	// running are not restored yet: slots are not handed out then, or a
	// model would run more than max_workers tasks at once.
	epoch string
	// epochInScript has the slot scripts check the epoch themselves, which
	// saves a round trip per call. Not on Redis Cluster: a script may only
	// touch keys of one hash slot, and the epoch key is not in the model's.
	epochInScript bool
	// modelMarks (Redis Cluster) has the slot scripts check a per-model
	// epoch marker instead, kept in the model's hash slot (markKeyOf), so
	// the check and the lease set it guards are read atomically: a flush
	// of the model's shard takes both at once (see markModel).
	modelMarks bool
	// wake is the key idle workers set when they stop polling Redis (see
	// wake.go); the slot scripts take it (KEYS[7]) when they hand out a
	// slot. Empty where wake-ups are off.
	wake string
	// wakePerModel gives each model a wake key of its own, in the model's
	// hash slot (wakeKeyOf), instead of the one wake key: on Redis Cluster
	// a script may only touch keys of one hash slot. Idle workers then set
	// the wake key of every model (Worker.armWake).
	wakePerModel bool
	// weights, when set, make a freed slot go to a priority band chosen by
	// smooth weighted round robin (high, medium, low: "6 3 1"), FIFO
	// within the band; empty keeps strict order (see Order).
	weights string
}

// Order is how a model's parked tasks take freed slots.
type Order struct {
	// Weighted picks the band of the next task by smooth weighted round
	// robin among the bands with waiting tasks, so that a low task behind
	// a high backlog still starts within a few hand-offs; otherwise high
	// drains before medium before low.
	Weighted bool
	// High, Medium and Low are the bands' weights (each at least 1) when
	// Weighted.
	High, Medium, Low int
}

// OrderOf reads a model queue's order from queue.strategy and
// queue.weights.
func OrderOf(q config.Queue) Order {
	if q.Strategy != "weighted" {
		return Order{}
	}
	return Order{Weighted: true, High: q.Weights[QueueHigh], Medium: q.Weights[QueueMedium], Low: q.Weights[QueueLow]}
}

// arg is the order as the slot scripts take it (ARGV[4]).
func (o Order) arg() string {
	if !o.Weighted {
		return ""
	}
	return fmt.Sprintf("%d %d %d", max(o.High, 1), max(o.Medium, 1), max(o.Low, 1))
}

// keys are a model's slot keys: the parked queue's tail, the leases, the
// backoff, the parked queue's head (see headSize), the weighted order's
// round-robin state (see Order), a hash that also holds the fair-share
// clocks (per band b its virtual time vb), and the callers' last tags (see
// fairShare), a sorted set with a member "b:c" per band b and caller c
// scored b*rankBand plus the caller's last tag.
//
// The callers' tags are bounded by the callers with work: a tag at or
// below its band's clock is deleted as the clock passes it (it gives the
// same next tag as no tag: max(V, L) = V), and all of a band's are
// deleted when the band runs empty and its clock starts again. So what is
// left are callers whose tasks are parked, or were parked since their
// band was last served and given up (a cancelled task).
func (s *Slots) keys(modelID int) []string {
	k := rediskeys.ModelOf(s.prefix, modelID)
	return []string{k.Parked(), k.Leases(), k.Backoff(), k.Head(), k.WRR(), k.Fair()}
}

// wakeKeyOf is the wake key the slot scripts of a model take ("" when
// wake-ups are off).
func (s *Slots) wakeKeyOf(modelID int) string {
	if s.wakePerModel {
		return rediskeys.ModelOf(s.prefix, modelID).Wake()
	}
	return s.wake
}

// headSize bounds the head of a model's parked queue. The queue is two
// sorted sets: the head holds its first tasks (at most headSize), the tail
// (the "parked" key) the rest, and every head task ranks before every tail
// task. Handing out a slot pops the head, and refills it from the tail
// headSize at a time. On Redis each pop is O(log n) either way; on the
// embedded in-process Redis (miniredis) every ordered read of a sorted set
// sorts all of it, and a backlog of thousands made every slot hand-off
// sort thousands: now it sorts at most headSize, and the tail once per
// headSize hand-offs.
const headSize = 32

// scriptKeys are the keys of an Admit or Release script call, and the max
// to pass it. The model's wake key, when there is one, rides along as
// KEYS[7]. With epochInScript (which needs a wake key before it) the epoch
// key follows as KEYS[8] and the script applies grantable's rule; with
// modelMarks the model's marker does; otherwise the epoch is read here
// first.
func (s *Slots) scriptKeys(ctx context.Context, modelID, limit int) ([]string, int, error) {
	keys := s.keys(modelID)
	wake := s.wakeKeyOf(modelID)
	if wake != "" {
		keys = append(keys, wake)
	}
	if s.modelMarks && wake != "" {
		return append(keys, s.markKeyOf(modelID)), limit, nil
	}
	if s.epochInScript && s.epoch != "" && wake != "" {
		return append(keys, s.epoch), limit, nil
	}
	limit, err := s.grantable(ctx, limit)
	return keys, limit, err
}

func (s *Slots) now() int64 { return time.Now().UnixMilli() }

// parseGrants reads a slot script's id, score pairs: leases given at now.
func parseGrants(v any, now int64, wake bool) ([]Grant, error) {
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("slot script returned %T", v)
	}
	out := make([]Grant, 0, len(arr)/2)
	for i := 0; i+1 < len(arr); i += 2 {
		ids, _ := arr[i].(string)
		id, err := strconv.Atoi(ids)
		if err != nil {
			return nil, fmt.Errorf("slot script returned task id %v", arr[i])
		}
		sc, _ := arr[i+1].(string)
		score, err := strconv.ParseFloat(sc, 64)
		if err != nil {
			return nil, fmt.Errorf("slot script returned score %v", arr[i+1])
		}
		out = append(out, Grant{TaskID: id, Priority: priorityOf(score), At: now, Wake: wake})
	}
	return out, nil
}

// admitItem is a task to park: its priority, and who it takes turns as
// with what weight (see fairShare).
type admitItem struct {
	ID, Priority int
	Caller       string
	Weight       int
}

// Admit parks tasks of one model and fills its free slots. It returns the
// tasks that already held a slot (their leases renewed; Priority unset)
// and the tasks just granted one.
func (s *Slots) Admit(ctx context.Context, modelID, limit int, items []admitItem) (held, granted []Grant, err error) {
	max0 := limit
	keys, limit, err := s.scriptKeys(ctx, modelID, limit)
	if err != nil {
		return nil, nil, err
	}
	now := s.now()
	args := make([]any, 0, 4+4*len(items))
	args = append(args, now, s.ttl.Milliseconds(), limit, s.weights)
	for _, it := range items {
		w := it.Weight
		if w < 1 {
			w = 1
		}
		args = append(args, it.ID, band(it.Priority), it.Caller, w)
	}
	res, err := admitScript.Run(ctx, s.rdb, keys, args...).Result()
	if err != nil {
		return nil, nil, fmt.Errorf("admit to model %d slots: %w", modelID, err)
	}
	parts, ok := res.([]any)
	if !ok || len(parts) != 4 {
		return nil, nil, fmt.Errorf("admit script returned %v", res)
	}
	wake := parts[2] == int64(1)
	hs, _ := parts[0].([]any)
	for _, h := range hs {
		id, err := strconv.Atoi(fmt.Sprint(h))
		if err != nil {
			return nil, nil, fmt.Errorf("admit script returned id %v", h)
		}
		held = append(held, Grant{TaskID: id, At: now, Wake: wake})
	}
	if granted, err = parseGrants(parts[1], now, wake); err != nil {
		return nil, nil, err
	}
	if parts[3] == int64(1) {
		more, err := s.unmarkedModel(ctx, modelID, max0)
		if err != nil {
			return nil, nil, err
		}
		granted = append(granted, more...)
	}
	return held, granted, nil
}

// Release frees a task's slot (or parked place) and hands free slots to the
// next parked tasks. repark > 0 parks the task again with that priority.
func (s *Slots) Release(ctx context.Context, modelID, limit, taskID, repark int) ([]Grant, error) {
	max0 := limit
	keys, limit, err := s.scriptKeys(ctx, modelID, limit)
	if err != nil {
		return nil, err
	}
	score := ""
	if repark > 0 {
		score = strconv.Itoa(band(repark))
	}
	now := s.now()
	res, err := releaseScript.Run(ctx, s.rdb, keys, now, s.ttl.Milliseconds(), limit, s.weights, taskID, score).Result()
	if err != nil {
		return nil, fmt.Errorf("release model %d slot of task %d: %w", modelID, taskID, err)
	}
	return s.parseRelease(ctx, res, now, modelID, max0)
}

// parseRelease reads a release script's {granted pairs, woke, unmarked}
// (max is the model's, for unmarkedModel).
func (s *Slots) parseRelease(ctx context.Context, res any, now int64, modelID, limit int) ([]Grant, error) {
	parts, ok := res.([]any)
	if !ok || len(parts) != 3 {
		return nil, fmt.Errorf("release script returned %v", res)
	}
	granted, err := parseGrants(parts[0], now, parts[1] == int64(1))
	if err != nil || parts[2] != int64(1) {
		return granted, err
	}
	more, err := s.unmarkedModel(ctx, modelID, limit)
	return append(granted, more...), err
}

// ReleaseMany frees the slots of several finished tasks of one model in
// one call and hands free slots to the next parked tasks.
func (s *Slots) ReleaseMany(ctx context.Context, modelID, limit int, taskIDs []int) ([]Grant, error) {
	if len(taskIDs) == 1 {
		return s.Release(ctx, modelID, limit, taskIDs[0], 0)
	}
	max0 := limit
	keys, limit, err := s.scriptKeys(ctx, modelID, limit)
	if err != nil {
		return nil, err
	}
	now := s.now()
	args := make([]any, 0, 4+len(taskIDs))
	args = append(args, now, s.ttl.Milliseconds(), limit, s.weights)
	for _, id := range taskIDs {
		args = append(args, id)
	}
	res, err := releaseManyScript.Run(ctx, s.rdb, keys, args...).Result()
	if err != nil {
		return nil, fmt.Errorf("release model %d slots of %d tasks: %w", modelID, len(taskIDs), err)
	}
	return s.parseRelease(ctx, res, now, modelID, max0)
}

// Pump fills a model's free slots from its parked queue.
func (s *Slots) Pump(ctx context.Context, modelID, limit int) ([]Grant, error) {
	_, granted, err := s.Admit(ctx, modelID, limit, nil)
	return granted, err
}

// Heartbeat renews a running task's lease. It reports false when the lease
// had expired (another worker may take the task over).
func (s *Slots) Heartbeat(ctx context.Context, modelID, taskID int) (bool, error) {
	n, err := heartbeatScript.Run(ctx, s.rdb, s.keys(modelID), s.now(), s.ttl.Milliseconds(), taskID).Int()
	if err != nil {
		return false, fmt.Errorf("renew lease of task %d: %w", taskID, err)
	}
	return n == 1, nil
}

// Backoff stops a model's dispatch until t (a provider asked us to slow down).
func (s *Slots) Backoff(ctx context.Context, modelID int, until time.Time) error {
	k := s.keys(modelID)[2]
	ms := until.UnixMilli()
	// Only ever extend a backoff.
	cur, err := s.rdb.Get(ctx, k).Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("read model %d backoff: %w", modelID, err)
	}
	if cur >= ms {
		return nil
	}
	return s.rdb.Set(ctx, k, ms, time.Until(until)+time.Second).Err()
}
