package jobs

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/llmsched/llm-scheduler/internal/providers"
)

func newTestSlots(t *testing.T) *Slots {
	t.Helper()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	return &Slots{rdb: rdb, prefix: "test", ttl: time.Minute}
}

func TestReserveRatePacesRequests(t *testing.T) {
	s := newTestSlots(t)
	ctx := context.Background()
	t0 := time.UnixMilli(1_700_000_000_000)
	l := providers.Limits{RPM: 60}
	steps := []struct {
		at   time.Duration
		wait time.Duration
	}{
		{0, 0},           // the first request goes at once
		{0, time.Second}, // the next waits a full interval
		{500 * time.Millisecond, 500 * time.Millisecond}, // half of it later
		{time.Second, 0},           // then goes
		{time.Second, time.Second}, // and the one after waits again
		{5 * time.Second, 0},       // an idle gap does not bank requests
		{5 * time.Second, time.Second},
	}
	for i, st := range steps {
		got, err := s.ReserveRate(ctx, 1, l, 1, t0.Add(st.at))
		if err != nil {
			t.Fatal(err)
		}
		if got != st.wait {
			t.Errorf("step %d at +%s: wait %s, want %s", i, st.at, got, st.wait)
		}
	}
	// Other models have their own buckets.
	if got, _ := s.ReserveRate(ctx, 2, l, 1, t0); got != 0 {
		t.Errorf("model 2 waited %s for model 1's limit", got)
	}
}

func TestReserveRateBurstsAFullSecond(t *testing.T) {
	s := newTestSlots(t)
	t0 := time.UnixMilli(1_700_000_000_000)
	l := providers.Limits{RPM: 600} // ten a second
	for i := range 10 {
		if got, _ := s.ReserveRate(context.Background(), 1, l, 1, t0); got != 0 {
			t.Fatalf("request %d of the first second waited %s", i+1, got)
		}
	}
	if got, _ := s.ReserveRate(context.Background(), 1, l, 1, t0); got != 100*time.Millisecond {
		t.Errorf("the eleventh request waits %s, want 100ms", got)
	}
}

func TestReserveRateTokensAndSettle(t *testing.T) {
	s := newTestSlots(t)
	ctx := context.Background()
	t0 := time.UnixMilli(1_700_000_000_000)
	l := providers.Limits{TPM: 1000} // 60ms a token, a minute's worth of burst
	if got, _ := s.ReserveRate(ctx, 1, l, 600, t0); got != 0 {
		t.Fatalf("first 600 tokens waited %s", got)
	}
	// 600 more would make 1200 in the bucket: 200 tokens (12s) too many.
	if got, _ := s.ReserveRate(ctx, 1, l, 600, t0); got != 12*time.Second {
		t.Errorf("second 600 tokens wait %s, want 12s", got)
	}
	// The first call really used 100 tokens: 500 come back.
	if err := s.SettleRate(ctx, 1, l, 100-600, t0); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ReserveRate(ctx, 1, l, 600, t0); got != 0 {
		t.Errorf("after the give-back, 600 tokens wait %s", got)
	}
	// A request larger than a minute's worth waits for a full bucket, not forever.
	if got, _ := s.ReserveRate(ctx, 1, l, 5000, t0); got != 42*time.Second {
		t.Errorf("an oversized request waits %s, want 42s (until the bucket is full)", got)
	}
}
