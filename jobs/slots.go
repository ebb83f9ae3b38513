package jobs

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/internal/config"
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

// grant is a task that was just given a slot, or whose lease was just
// renewed.
type grant struct {
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

// grantable is how many slots of a model may be held: max, or 0 while
// Redis has lost its data and the reconciler has not re-established it.
func (s *Slots) grantable(ctx context.Context, max int) (int, error) {
	if max == 0 || s.epoch == "" {
		return max, nil
	}
	n, err := s.rdb.Exists(ctx, s.epoch).Result()
	if err != nil {
		return 0, fmt.Errorf("read epoch: %w", err)
	}
	if n == 0 {
		return 0, nil
	}
	return max, nil
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
	tag := s.tag(modelID)
	return []string{tag + ":parked", tag + ":leases", tag + ":backoff", tag + ":head", tag + ":wrr", tag + ":fair"}
}

// tag is the hash tag of a model's keys: it keeps them in one Redis
// Cluster hash slot, so one script may touch them all.
func (s *Slots) tag(modelID int) string { return fmt.Sprintf("{%s:model:%d}", s.prefix, modelID) }

// wakeKeyOf is the wake key the slot scripts of a model take ("" when
// wake-ups are off).
func (s *Slots) wakeKeyOf(modelID int) string {
	if s.wakePerModel {
		return s.tag(modelID) + ":wake"
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

// markKeyOf is a model's epoch marker (Redis Cluster): it exists while
// the model's lease set is whole. Only markModel and the reconciler write
// it, and a flush or failover that loses the model's keys loses it with
// them.
func (s *Slots) markKeyOf(modelID int) string { return s.tag(modelID) + ":mark" }

// markedKey is the set of models ever marked. It is kept in the epoch
// key's hash slot (one script reads both): the epoch key has no hash tag
// (redis.key_prefix may not hold braces), so Redis Cluster hashes its
// whole name, which is the set's tag.
func (s *Slots) markedKey() string { return "{" + s.epoch + "}:marked" }

// markScript marks a model that was never marked, while the epoch key
// (KEYS[1]) exists: it adds the model (ARGV[1]) to the marked set
// (KEYS[2]) and returns 1; the caller then writes the model's marker.
// A model never marked has never had a slot handed out (the scripts hand
// none out without the marker), so its lease set is whole: empty. A
// marked model whose marker is gone lost its keys; the reconciler marks
// it again once running workers have restored their leases.
var markScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('SADD', KEYS[2], ARGV[1])
`)

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

// scriptKeys are the keys of an Admit or Release script call, and the max
// to pass it. The model's wake key, when there is one, rides along as
// KEYS[7]. With epochInScript (which needs a wake key before it) the epoch
// key follows as KEYS[8] and the script applies grantable's rule; with
// modelMarks the model's marker does; otherwise the epoch is read here
// first.
func (s *Slots) scriptKeys(ctx context.Context, modelID, max int) ([]string, int, error) {
	keys := s.keys(modelID)
	wake := s.wakeKeyOf(modelID)
	if wake != "" {
		keys = append(keys, wake)
	}
	if s.modelMarks && wake != "" {
		return append(keys, s.markKeyOf(modelID)), max, nil
	}
	if s.epochInScript && s.epoch != "" && wake != "" {
		return append(keys, s.epoch), max, nil
	}
	max, err := s.grantable(ctx, max)
	return keys, max, err
}

// unmarkedModel is after a slot script call that found the model's marker
// missing (modelMarks): a model never marked is marked now and its free
// slots filled (see markScript). A model that lost its marker waits for
// the reconciler.
func (s *Slots) unmarkedModel(ctx context.Context, modelID, max int) ([]grant, error) {
	if !s.modelMarks || max == 0 {
		return nil, nil
	}
	ok, err := s.markModel(ctx, modelID)
	if err != nil || !ok {
		return nil, err
	}
	return s.Pump(ctx, modelID, max)
}

// Common prologue. KEYS: the parked queue's tail, the leases, the backoff,
// the parked queue's head, the weighted order's state and band clocks,
// the callers' fair-share tags (KEYS[1..6], see Slots.keys), then the wake
// key (KEYS[7]) and the epoch key or the model's marker (KEYS[8]) when
// given. All but the epoch key carry the model's hash tag. ARGV: now (unix ms), the lease
// TTL (ms), max, the order ("" strict, else the high, medium and low
// weights), then the script's own.
//
// No slots while the epoch key or the model's marker (KEYS[8], when given)
// is missing (see Slots.grantable and markScript); the script then
// returns a last element 1 (unmarked); drop expired leases, and learn whether the model's
// dispatch is backing off. park puts a task in the parked queue, head or
// tail (see headSize); unpark takes it out; tag gives a new task its
// fair-share score, served moves its band's clock (see fairShare). The fill loop hands free slots
// to the next parked tasks (pop: the queue's first; popWeighted: the first
// of a band chosen by smooth weighted round robin) and returns them as id,
// score pairs. woke takes the wake key (KEYS[7], when given): 1 if idle
// workers were waiting for a wake-up.
var slotPrologue = strings.NewReplacer("HEAD_SIZE", strconv.Itoa(headSize), "RANK_BAND", strconv.FormatFloat(rankBand, 'f', -1, 64),
	"FAIR_SHARE", strconv.FormatFloat(fairShare, 'f', -1, 64)).Replace(`
local parked, leases, backoff, head, wrr, fair = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
-- The bands' fair-share clocks share the round robin's hash (fields vB);
-- the callers' last tags are the sorted set fair (member B:caller, score
-- B * band + tag; see Slots.keys).
local now, ttl, max = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local headSize, band = HEAD_SIZE, RANK_BAND
local weights = {}
for w in string.gmatch(ARGV[4], '%d+') do weights[#weights + 1] = tonumber(w) end
local unmarked = 0
if KEYS[8] and max > 0 and redis.call('EXISTS', KEYS[8]) == 0 then max, unmarked = 0, 1 end
redis.call('ZREMRANGEBYSCORE', leases, '-inf', now)
-- tonum reads a score. The embedded Redis (miniredis, on gopher-lua)
-- writes round scores as 1e+15, which gopher-lua's tonumber cannot read.
local function tonum(x)
  local n = tonumber(x)
  if n then return n end
  local m, e = string.match(x, '^(.-)e%+?(%-?%d+)$')
  return tonumber(m) * 10 ^ tonumber(e)
end
local function unpark(id)
  redis.call('ZREM', head, id)
  redis.call('ZREM', parked, id)
end
local function park(id, score)
  unpark(id)
  local toHead = redis.call('ZCARD', parked) == 0
  if not toHead then
    local last = redis.call('ZRANGE', head, -1, -1, 'WITHSCORES')
    toHead = #last > 0 and tonum(score) < tonum(last[2])
  end
  if not toHead then
    redis.call('ZADD', parked, score, id)
    return
  end
  redis.call('ZADD', head, score, id)
  if redis.call('ZCARD', head) > headSize then
    local out = redis.call('ZPOPMAX', head)
    redis.call('ZADD', parked, out[2], out[1])
  end
end
local function num(x) return string.format('%.17g', x) end
-- bandEmpty: no task of band b is parked. Every head task ranks before
-- every tail task, so the tail is read only when the head cannot tell.
local function bandEmpty(b)
  local lo, hi = string.format('%.0f', b * band), string.format('(%.0f', (b + 1) * band)
  if redis.call('ZCOUNT', head, lo, hi) > 0 then return false end
  local last = redis.call('ZRANGE', head, -1, -1, 'WITHSCORES')
  if #last > 0 and math.floor(tonum(last[2]) / band) > b then return true end
  return redis.call('ZCOUNT', parked, lo, hi) == 0
end
-- tag is the score of a new task of band b from caller c with weight w:
-- band b, then max(V, L) + step (see fairShare in slots.go). A band run
-- empty starts its clock again and forgets its callers' tags.
local function tag(b, c, w)
  local v = tonum(redis.call('HGET', wrr, 'v' .. b) or '0')
  if v > 0 and bandEmpty(b) then
    v = 0
    redis.call('HSET', wrr, 'v' .. b, '0')
    redis.call('ZREMRANGEBYSCORE', fair, string.format('%.0f', b * band), string.format('(%.0f', (b + 1) * band))
  end
  local start = v
  local mine = redis.call('ZSCORE', fair, b .. ':' .. c)
  if mine and tonum(mine) - b * band > start then start = tonum(mine) - b * band end
  local t = num(b * band + start + FAIR_SHARE / w)
  redis.call('ZADD', fair, t, b .. ':' .. c)
  return t
end
-- served moves the clock of a task's band to its tag as it takes a slot,
-- and forgets the band's callers' tags the clock reached (max(V, L) is V
-- for them, as with no tag).
local function served(score)
  local s = tonum(score)
  local b = math.floor(s / band)
  redis.call('HSET', wrr, 'v' .. b, num(s - b * band))
  redis.call('ZREMRANGEBYSCORE', fair, string.format('%.0f', b * band), num(s))
end
-- front is the score that puts a task back first in its band (a task
-- given back while it waits on a rate limit: it had its turn's place).
local function front(b)
  return num(b * band + tonum(redis.call('HGET', wrr, 'v' .. b) or '0'))
end
local function pop()
  local top = redis.call('ZPOPMIN', head)
  if #top > 0 then return top end
  local chunk = redis.call('ZPOPMIN', parked, headSize)
  for i = 3, #chunk, 2 do redis.call('ZADD', head, chunk[i + 1], chunk[i]) end
  return {chunk[1], chunk[2]}
end
-- popWeighted: bands 1, 2, 3 are high, medium, low (score / band). Every
-- head task ranks before every tail task, so a band after the head's last
-- task's band can only be in the tail, and the others only in the head.
local function popWeighted()
  if redis.call('ZCARD', head) == 0 then
    local chunk = redis.call('ZPOPMIN', parked, headSize)
    for i = 1, #chunk, 2 do redis.call('ZADD', head, chunk[i + 1], chunk[i]) end
  end
  local last = redis.call('ZRANGE', head, -1, -1, 'WITHSCORES')
  if #last == 0 then return {} end
  local lastBand = math.floor(tonum(last[2]) / band)
  local cur = redis.call('HMGET', wrr, '1', '2', '3')
  local from, tops, total, best = {}, {}, 0, nil
  for b = 1, 3 do
    from[b] = head
    if b > lastBand then from[b] = parked end
    local top = redis.call('ZRANGEBYSCORE', from[b], string.format('%.0f', b * band),
      string.format('(%.0f', (b + 1) * band), 'WITHSCORES', 'LIMIT', 0, 1)
    if #top > 0 then
      tops[b] = top
      cur[b] = (tonumber(cur[b]) or 0) + weights[b]
      total = total + weights[b]
      if not best or cur[b] > cur[best] then best = b end
    end
  end
  if total > weights[best] then
    -- Only a choice between bands moves the round robin on.
    cur[best] = cur[best] - total
    for b = 1, 3 do
      if tops[b] then redis.call('HSET', wrr, tostring(b), tostring(cur[b])) end
    end
  end
  redis.call('ZREM', from[best], tops[best][1])
  return tops[best]
end
local function fill()
  local granted = {}
  if tonumber(redis.call('GET', backoff) or '0') > now then return granted end
  while redis.call('ZCARD', leases) < max do
    local top
    if #weights == 3 then top = popWeighted() else top = pop() end
    if not top[1] then break end
    served(top[2])
    redis.call('ZADD', leases, now + ttl, top[1])
    granted[#granted + 1] = top[1]
    granted[#granted + 1] = top[2]
  end
  return granted
end
local function woke()
  if KEYS[7] and redis.call('DEL', KEYS[7]) == 1 then return 1 end
  return 0
end
`)

// admitScript parks tasks (ARGV[5..]: id, band, caller, weight) unless
// they already hold a slot or wait parked (they keep their place), then
// fills free slots. Returns {held ids, granted pairs, woke, unmarked}.
var admitScript = redis.NewScript(slotPrologue + `
local held = {}
for i = 5, #ARGV, 4 do
  local id = ARGV[i]
  if redis.call('ZSCORE', leases, id) then
    redis.call('ZADD', leases, now + ttl, id)
    held[#held + 1] = id
  elseif not redis.call('ZSCORE', head, id) and not redis.call('ZSCORE', parked, id) then
    park(id, tag(tonumber(ARGV[i + 1]), ARGV[i + 2], tonumber(ARGV[i + 3])))
  end
end
local granted = fill()
local w = 0
if #held > 0 or #granted > 0 then w = woke() end
return {held, granted, w, unmarked}
`)

// releaseScript frees a task's slot (ARGV[5]) and drops it from the parked
// queue; with ARGV[6] set (a band) it parks the task again, first in that
// band. Then it fills. Returns {granted pairs, woke, unmarked}.
var releaseScript = redis.NewScript(slotPrologue + `
local id = ARGV[5]
redis.call('ZREM', leases, id)
unpark(id)
if ARGV[6] ~= '' then park(id, front(tonumber(ARGV[6]))) end
local granted = fill()
local w = 0
if #granted > 0 then w = woke() end
return {granted, w, unmarked}
`)

// releaseManyScript frees the slots of finished tasks (ARGV[5..]), then
// fills. Returns {granted pairs, woke, unmarked}.
var releaseManyScript = redis.NewScript(slotPrologue + `
for i = 5, #ARGV do
  redis.call('ZREM', leases, ARGV[i])
  unpark(ARGV[i])
end
local granted = fill()
local w = 0
if #granted > 0 then w = woke() end
return {granted, w, unmarked}
`)

// heartbeatScript renews a running task's lease (re-creating it after a
// Redis flush). Returns 1 if the lease existed.
var heartbeatScript = redis.NewScript(`
local existed = redis.call('ZSCORE', KEYS[2], ARGV[3]) and 1 or 0
redis.call('ZADD', KEYS[2], tonumber(ARGV[1]) + tonumber(ARGV[2]), ARGV[3])
return existed
`)

func (s *Slots) now() int64 { return time.Now().UnixMilli() }

// parseGrants reads a slot script's id, score pairs: leases given at now.
func parseGrants(v any, now int64, wake bool) ([]grant, error) {
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("slot script returned %T", v)
	}
	out := make([]grant, 0, len(arr)/2)
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
		out = append(out, grant{TaskID: id, Priority: priorityOf(score), At: now, Wake: wake})
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
func (s *Slots) Admit(ctx context.Context, modelID, max int, items []admitItem) (held, granted []grant, err error) {
	max0 := max
	keys, max, err := s.scriptKeys(ctx, modelID, max)
	if err != nil {
		return nil, nil, err
	}
	now := s.now()
	args := make([]any, 0, 4+4*len(items))
	args = append(args, now, s.ttl.Milliseconds(), max, s.weights)
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
		held = append(held, grant{TaskID: id, At: now, Wake: wake})
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
func (s *Slots) Release(ctx context.Context, modelID, max, taskID, repark int) ([]grant, error) {
	max0 := max
	keys, max, err := s.scriptKeys(ctx, modelID, max)
	if err != nil {
		return nil, err
	}
	score := ""
	if repark > 0 {
		score = strconv.Itoa(band(repark))
	}
	now := s.now()
	res, err := releaseScript.Run(ctx, s.rdb, keys, now, s.ttl.Milliseconds(), max, s.weights, taskID, score).Result()
	if err != nil {
		return nil, fmt.Errorf("release model %d slot of task %d: %w", modelID, taskID, err)
	}
	return s.parseRelease(ctx, res, now, modelID, max0)
}

// parseRelease reads a release script's {granted pairs, woke, unmarked}
// (max is the model's, for unmarkedModel).
func (s *Slots) parseRelease(ctx context.Context, res any, now int64, modelID, max int) ([]grant, error) {
	parts, ok := res.([]any)
	if !ok || len(parts) != 3 {
		return nil, fmt.Errorf("release script returned %v", res)
	}
	granted, err := parseGrants(parts[0], now, parts[1] == int64(1))
	if err != nil || parts[2] != int64(1) {
		return granted, err
	}
	more, err := s.unmarkedModel(ctx, modelID, max)
	return append(granted, more...), err
}

// ReleaseMany frees the slots of several finished tasks of one model in
// one call and hands free slots to the next parked tasks.
func (s *Slots) ReleaseMany(ctx context.Context, modelID, max int, taskIDs []int) ([]grant, error) {
	if len(taskIDs) == 1 {
		return s.Release(ctx, modelID, max, taskIDs[0], 0)
	}
	max0 := max
	keys, max, err := s.scriptKeys(ctx, modelID, max)
	if err != nil {
		return nil, err
	}
	now := s.now()
	args := make([]any, 0, 4+len(taskIDs))
	args = append(args, now, s.ttl.Milliseconds(), max, s.weights)
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
func (s *Slots) Pump(ctx context.Context, modelID, max int) ([]grant, error) {
	_, granted, err := s.Admit(ctx, modelID, max, nil)
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
	if err != nil && err != redis.Nil {
		return fmt.Errorf("read model %d backoff: %w", modelID, err)
	}
	if cur >= ms {
		return nil
	}
	return s.rdb.Set(ctx, k, ms, time.Until(until)+time.Second).Err()
}

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
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
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
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
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
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
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
