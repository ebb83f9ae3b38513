package jobs

// Every Lua script the scheduler runs on Redis. Above each: the keys
// (KEYS) and arguments (ARGV) it takes and what it returns. The keys are
// named in internal/rediskeys; a script may only take keys of one hash
// slot (Redis Cluster), which their hash tags see to.

import (
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// slotPrologue is the common start of the slot scripts (admitScript,
// releaseScript, releaseManyScript), which take the same keys and first
// arguments; each appends its own arguments and body.
//
// Input:
// KEYS[1] -> the parked queue's tail (rediskeys.Model.Parked)
// KEYS[2] -> the leases (Model.Leases)
// KEYS[3] -> the backoff (Model.Backoff)
// KEYS[4] -> the parked queue's head (Model.Head; see headSize)
// KEYS[5] -> the weighted order's state and the bands' fair-share clocks (Model.WRR)
// KEYS[6] -> the callers' fair-share tags (Model.Fair)
// KEYS[7] -> the wake key, when wake-ups are on (rediskeys.WakeArmed, or Model.Wake on Redis Cluster)
// KEYS[8] -> the epoch key (rediskeys.Epoch) or the model's marker (Model.Mark), when given
// All but the epoch key carry the model's hash tag.
//
// ARGV[1] -> now (unix ms)
// ARGV[2] -> the lease TTL (ms)
// ARGV[3] -> max, the model's slots
// ARGV[4] -> the order ("" strict, else the high, medium and low weights; see Order)
// ARGV[5..] -> the script's own
//
// No slots while the epoch key or the model's marker (KEYS[8], when given)
// is missing (see Slots.grantable and markScript); the script then
// returns a last element 1 (unmarked). The prologue drops expired leases.
// park puts a task in the parked queue, head or tail (see headSize);
// unpark takes it out; refill moves the tail's first tasks into an empty
// head; served moves a band's fair-share clock as a task of it takes a
// slot (see fairShare; admitScript gives new tasks their tags). fill
// hands free slots to the next parked tasks, unless the model's dispatch
// is backing off (pop: the queue's first; popWeighted: the first of a band
// chosen by smooth weighted round robin) and returns them as id, score
// pairs. woke takes the wake key (KEYS[7], when given): 1 if idle workers
// were waiting for a wake-up.
var slotPrologue = strings.NewReplacer("HEAD_SIZE", strconv.Itoa(headSize), "RANK_BAND", strconv.FormatFloat(rankBand, 'f', -1, 64),
	"FAIR_SHARE", strconv.FormatFloat(fairShare, 'f', -1, 64)).Replace(`
local parked, leases, backoff, head, wrr, fair = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
-- The bands' fair-share clocks share the round robin's hash (fields vB);
-- the callers' last tags are the sorted set fair (member B:caller, score
-- B * band + tag; see Slots.keys).
local now, ttl, max = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local headSize, band, step = HEAD_SIZE, RANK_BAND, FAIR_SHARE
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
-- refill moves the tail's first tasks into an empty head. Hand-offs drain
-- the head; while it is empty every look at the queue (where a new task
-- goes, whether a band is empty) has to read the tail, and on the embedded
-- Redis each of those sorts the whole backlog. Refilled, the tail is read
-- once per headSize hand-offs.
local function refill()
  if redis.call('ZCARD', head) > 0 then return end
  local chunk = redis.call('ZPOPMIN', parked, headSize)
  for i = 1, #chunk, 2 do redis.call('ZADD', head, chunk[i + 1], chunk[i]) end
end
local function park(id, score)
  unpark(id)
  refill()
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
  refill()
  local lo, hi = string.format('%.0f', b * band), string.format('(%.0f', (b + 1) * band)
  if redis.call('ZCOUNT', head, lo, hi) > 0 then return false end
  local last = redis.call('ZRANGE', head, -1, -1, 'WITHSCORES')
  if #last > 0 and math.floor(tonum(last[2]) / band) > b then return true end
  return redis.call('ZCOUNT', parked, lo, hi) == 0
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
  refill()
  return redis.call('ZPOPMIN', head)
end
-- popWeighted: bands 1, 2, 3 are high, medium, low (score / band). Every
-- head task ranks before every tail task, so a band after the head's last
-- task's band can only be in the tail, and the others only in the head.
local function popWeighted()
  refill()
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

// admitScript parks tasks unless they already hold a slot (their lease is
// renewed) or wait parked (they keep their place), then fills free slots.
// A batch is parked in a few calls, not a dozen per task: the tasks'
// places are read with one ZMSCORE per sorted set, each band's clock and
// each caller's tag are read once and carried along (tagging a task moves
// nothing but its caller's tag, and a band the batch parks in is not
// empty), and the new tasks go to the head or the tail in one ZADD each.
// The head then gives its last tasks beyond headSize to the tail: every new
// head task ranked before the head's old last task, which ranked before the
// whole tail, so every head task still ranks before every tail task.
//
// Input: KEYS and ARGV[1..4] as slotPrologue, then
// ARGV[5..] -> per task: id, band, caller, weight (4 arguments each)
//
// Output:
// {held ids, granted id/score pairs, woke (0/1), unmarked (0/1)}
var admitScript = redis.NewScript(slotPrologue + `
-- many runs a command whose last arguments are a long list, a few hundred
-- at a time (Lua's stack bounds unpack); it returns the replies joined.
local function many(cmd, key, list)
  local out = {}
  for i = 1, #list, 400 do
    local r = redis.call(cmd, key, unpack(list, i, math.min(i + 399, #list)))
    if type(r) == 'table' then
      for _, x in ipairs(r) do out[#out + 1] = x end
    end
  end
  return out
end
local ids = {}
for i = 5, #ARGV, 4 do ids[#ids + 1] = ARGV[i] end
local inLeases, inHead, inTail = many('ZMSCORE', leases, ids), many('ZMSCORE', head, ids), many('ZMSCORE', parked, ids)
local held, seen, fresh = {}, {}, {}
local clocks, tags, dirty = {}, {}, {}
for k, id in ipairs(ids) do
  local i = 5 + (k - 1) * 4
  if inLeases[k] then
    redis.call('ZADD', leases, now + ttl, id)
    held[#held + 1] = id
  elseif not inHead[k] and not inTail[k] and not seen[id] then
    seen[id] = true
    local b, c, w = tonumber(ARGV[i + 1]), ARGV[i + 2], tonumber(ARGV[i + 3])
    -- A new task of band b from caller c with weight w is scored band b,
    -- then max(V, L) + step (see fairShare in slots.go). A band run empty
    -- starts its clock again and forgets its callers' tags.
    local v = clocks[b]
    if v == nil then
      v = tonum(redis.call('HGET', wrr, 'v' .. b) or '0')
      if v > 0 and bandEmpty(b) then
        v = 0
        redis.call('HSET', wrr, 'v' .. b, '0')
        redis.call('ZREMRANGEBYSCORE', fair, string.format('%.0f', b * band), string.format('(%.0f', (b + 1) * band))
      end
      clocks[b] = v
    end
    local key = b .. ':' .. c
    local mine = tags[key]
    if mine == nil then
      local s = redis.call('ZSCORE', fair, key)
      mine = s and tonum(s) or false
    end
    local start = v
    if mine and mine - b * band > start then start = mine - b * band end
    local t = num(b * band + start + step / w)
    tags[key], dirty[key] = tonum(t), t
    fresh[#fresh + 1] = {id, t}
  end
end
if #fresh > 0 then
  local tagged = {}
  for key, t in pairs(dirty) do
    tagged[#tagged + 1] = t
    tagged[#tagged + 1] = key
  end
  many('ZADD', fair, tagged)
  -- Where park (slotPrologue) puts one task, for the whole batch.
  refill()
  local last = nil
  if redis.call('ZCARD', parked) > 0 then
    local l = redis.call('ZRANGE', head, -1, -1, 'WITHSCORES')
    last = tonum(l[2])
  end
  local toHead, toTail = {}, {}
  for _, f in ipairs(fresh) do
    local dst = toTail
    if not last or tonum(f[2]) < last then dst = toHead end
    dst[#dst + 1] = f[2]
    dst[#dst + 1] = f[1]
  end
  many('ZADD', head, toHead)
  many('ZADD', parked, toTail)
  local over = redis.call('ZCARD', head) - headSize
  if over > 0 then
    local out = redis.call('ZPOPMAX', head, over)
    local moved = {}
    for j = 1, #out, 2 do
      moved[#moved + 1] = out[j + 1]
      moved[#moved + 1] = out[j]
    end
    many('ZADD', parked, moved)
  end
end
local granted = fill()
local w = 0
if #held > 0 or #granted > 0 then w = woke() end
return {held, granted, w, unmarked}
`)

// releaseScript frees a task's slot and drops it from the parked queue;
// with a band given it parks the task again, first in that band. Then it
// fills free slots.
//
// Input: KEYS and ARGV[1..4] as slotPrologue, then
// ARGV[5] -> the task id
// ARGV[6] -> "" or the band to park it again in
//
// Output:
// {granted id/score pairs, woke (0/1), unmarked (0/1)}
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

// releaseManyScript frees the slots of finished tasks, then fills free
// slots.
//
// Input: KEYS and ARGV[1..4] as slotPrologue, then
// ARGV[5..] -> the task ids
//
// Output:
// {granted id/score pairs, woke (0/1), unmarked (0/1)}
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
// Redis flush).
//
// Input:
// KEYS[1..6] -> a model's slot keys as slotPrologue; only KEYS[2], the leases, is used
// ARGV[1] -> now (unix ms)
// ARGV[2] -> the lease TTL (ms)
// ARGV[3] -> the task id
//
// Output:
// 1 if the lease existed, else 0.
var heartbeatScript = redis.NewScript(`
local existed = redis.call('ZSCORE', KEYS[2], ARGV[3]) and 1 or 0
redis.call('ZADD', KEYS[2], tonumber(ARGV[1]) + tonumber(ARGV[2]), ARGV[3])
return existed
`)

// markScript marks a model that was never marked, while the epoch key
// exists (Redis Cluster; see Slots.markModel). A model never marked has
// never had a slot handed out (the slot scripts hand none out without its
// marker), so its lease set is whole: empty. A marked model whose marker
// is gone lost its keys; the reconciler marks it again once running
// workers have restored their leases. The caller writes the model's
// marker when the script says so.
//
// Input:
// KEYS[1] -> the epoch key (rediskeys.Epoch)
// KEYS[2] -> the set of marked models (rediskeys.Marked)
// ARGV[1] -> the model id
//
// Output:
// 0 if the epoch key is missing or the model was marked before; 1 if the
// model is marked now.
var markScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('SADD', KEYS[2], ARGV[1])
`)

// rateScript checks and takes a model's request and token buckets at once
// (GCRA; see slots_ratelimit.go): nothing is taken unless both allow it.
//
// Input:
// KEYS[1] -> the request bucket (rediskeys.Model.RateRequests)
// KEYS[2] -> the token bucket (Model.RateTokens)
// ARGV[1] -> now (ms)
// ARGV[2] -> request interval (ms; 0 = no rpm)
// ARGV[3] -> request burst
// ARGV[4] -> token interval (ms per token; 0 = no tpm)
// ARGV[5] -> token burst
// ARGV[6] -> the cost in tokens
//
// Output:
// 0 when taken, else the ms to wait.
var rateScript = redis.NewScript(`
local now = tonumber(ARGV[1])
local wait = 0
local function check(key, interval, burst, cost)
  if interval <= 0 then return nil end
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local new = tat + cost * interval
  local allow = new - burst * interval
  if allow > now and allow - now > wait then wait = allow - now end
  return new
end
local reqNew = check(KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]), 1)
local tokNew = check(KEYS[2], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]))
if wait > 0 then return math.ceil(wait) end
if reqNew then redis.call('SET', KEYS[1], tostring(reqNew), 'PX', math.ceil(reqNew - now) + 1000) end
if tokNew then redis.call('SET', KEYS[2], tostring(tokNew), 'PX', math.ceil(tokNew - now) + 1000) end
return 0
`)

// rateSettleScript moves a model's token bucket by the difference between
// a call's estimated and reported tokens.
//
// Input:
// KEYS[1] -> the token bucket (rediskeys.Model.RateTokens)
// ARGV[1] -> now (ms)
// ARGV[2] -> token interval (ms per token)
// ARGV[3] -> tokens to charge (negative: to give back)
//
// Output:
// 0.
var rateSettleScript = redis.NewScript(`
local now = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
tat = tat + tonumber(ARGV[3]) * tonumber(ARGV[2])
if tat <= now then redis.call('DEL', KEYS[1]) return 0 end
redis.call('SET', KEYS[1], tostring(tat), 'PX', math.ceil(tat - now) + 1000)
return 0
`)

// leaseAcquireScript takes the lease if nobody holds it, or extends it if
// its owner asks again.
//
// Input:
// KEYS[1] -> the lease key (rediskeys.ReconcilerLock for the reconciler)
// ARGV[1] -> the owner token
// ARGV[2] -> ttl in ms
//
// Output:
// 1 if ARGV[1] holds the lease now, else 0.
var leaseAcquireScript = redis.NewScript(`
local cur = redis.call("GET", KEYS[1])
if cur == ARGV[1] then
	redis.call("PEXPIRE", KEYS[1], ARGV[2])
	return 1
end
if cur then
	return 0
end
redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
return 1`)

// leaseRenewScript extends the lease only if ARGV[1] still holds it
// (compare-and-extend).
//
// Input:
// KEYS[1] -> the lease key
// ARGV[1] -> the owner token
// ARGV[2] -> ttl in ms
//
// Output:
// 1 if extended; 0 if the key expired, was released or belongs to
// another owner.
var leaseRenewScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0`)

// leaseReleaseScript deletes the lease only if ARGV[1] holds it
// (compare-and-delete).
//
// Input:
// KEYS[1] -> the lease key
// ARGV[1] -> the owner token
//
// Output:
// 1 if deleted, else 0.
var leaseReleaseScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0`)

// wakeIfArmedScript takes the wake key and, if a worker had set it,
// publishes a wake-up (see Dispatcher.enqueue).
//
// Input:
// KEYS[1] -> the wake key (rediskeys.WakeArmed, or rediskeys.Model.Wake)
// ARGV[1] -> the wake-up channel (rediskeys.WakeChannel)
//
// Output:
// 1 if it published a wake-up, else 0.
var wakeIfArmedScript = redis.NewScript(`
if redis.call('DEL', KEYS[1]) == 1 then
  redis.call('PUBLISH', ARGV[1], '')
  return 1
end
return 0`)
