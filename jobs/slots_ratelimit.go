package jobs

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llmsched/llm-scheduler/internal/providers"
)

// Per-model rate limits: a model's config may set rpm (requests per
// minute) and tpm (tokens per minute, prompt plus answer). They hold across
// every worker process because the state lives in Redis, next to the
// model's slots under its hash tag.
//
// Each limit is a GCRA (generic cell rate algorithm) bucket: Redis keeps
// one "theoretical arrival time" per limit, and a call is allowed when
// taking its cost would not push that time further ahead of now than the
// bucket's burst. Requests are paced evenly, with a burst of one second's
// worth (rpm 60 lets one request start a second; rpm 600, ten at once),
// as providers themselves enforce per-minute limits over short windows.
// Tokens may burst up to a minute's worth, since one request can cost
// thousands. Before a call the worker reserves its estimated tokens
// (providers.EstimateRequestTokens); after it, the difference to the
// usage the provider reported is charged or given back.
//
// A task over the limit waits and burns no retry: it records no attempt,
// and the model's dispatch backs off until the bucket has room
// (Slots.Backoff, which Explain reports as rate_limited). See admitRate.

// rateScript checks and takes both buckets at once. KEYS: request and
// token buckets. ARGV: now (ms), request interval (ms, 0 = no rpm), request
// burst, token interval (ms per token, 0 = no tpm), token burst, cost in
// tokens. Returns 0 when taken, else the ms to wait.
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

// rateSettleScript moves the token bucket by ARGV[3] tokens (negative:
// give back) at ARGV[2] ms per token. ARGV[1] is now (ms).
var rateSettleScript = redis.NewScript(`
local now = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
tat = tat + tonumber(ARGV[3]) * tonumber(ARGV[2])
if tat <= now then redis.call('DEL', KEYS[1]) return 0 end
redis.call('SET', KEYS[1], tostring(tat), 'PX', math.ceil(tat - now) + 1000)
return 0
`)

func (s *Slots) rateKeys(modelID int) []string {
	tag := fmt.Sprintf("{%s:model:%d}", s.prefix, modelID)
	return []string{tag + ":rate:requests", tag + ":rate:tokens"}
}

// rateParams are the GCRA parameters of a model's limits.
type rateParams struct {
	reqInterval, reqBurst float64
	tokInterval, tokBurst float64
}

func rateParamsOf(l providers.Limits) rateParams {
	var p rateParams
	if l.RPM > 0 {
		p.reqInterval = 60000 / float64(l.RPM)
		p.reqBurst = math.Max(1, math.Floor(float64(l.RPM)/60))
	}
	if l.TPM > 0 {
		p.tokInterval = 60000 / float64(l.TPM)
		p.tokBurst = float64(l.TPM)
	}
	return p
}

// ReserveRate takes one request and tokens from a model's buckets at now.
// It returns 0 when they were taken, else how long to wait (nothing is
// taken then). A cost above the token burst is charged as the burst, so a
// huge request waits for a full bucket instead of forever.
func (s *Slots) ReserveRate(ctx context.Context, modelID int, l providers.Limits, tokens int, now time.Time) (time.Duration, error) {
	p := rateParamsOf(l)
	cost := math.Min(float64(tokens), p.tokBurst)
	ms, err := rateScript.Run(ctx, s.rdb, s.rateKeys(modelID), now.UnixMilli(),
		p.reqInterval, p.reqBurst, p.tokInterval, p.tokBurst, cost).Int64()
	if err != nil {
		return 0, fmt.Errorf("reserve model %d rate: %w", modelID, err)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// SettleRate charges (delta > 0) or gives back (delta < 0) tokens after a
// call, once its real usage is known.
func (s *Slots) SettleRate(ctx context.Context, modelID int, l providers.Limits, delta int, now time.Time) error {
	p := rateParamsOf(l)
	if p.tokInterval == 0 || delta == 0 {
		return nil
	}
	if err := rateSettleScript.Run(ctx, s.rdb, s.rateKeys(modelID)[1:], now.UnixMilli(), p.tokInterval, delta).Err(); err != nil {
		return fmt.Errorf("settle model %d token usage: %w", modelID, err)
	}
	return nil
}
