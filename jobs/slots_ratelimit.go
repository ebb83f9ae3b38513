package jobs

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/llmsched/llm-scheduler/internal/providers"
	"github.com/llmsched/llm-scheduler/internal/rediskeys"
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

// rateKeys are a model's request and token buckets.
func (s *Slots) rateKeys(modelID int) []string {
	k := rediskeys.ModelOf(s.prefix, modelID)
	return []string{k.RateRequests(), k.RateTokens()}
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
