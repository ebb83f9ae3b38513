package jobs

import (
	"errors"
	"testing"
	"time"
)

// TestRetryPolicyDelay: the delay doubles per failed attempt within ±20%
// jitter, stops at Max, and a provider's own delay wins (capped at Max
// too).
func TestRetryPolicyDelay(t *testing.T) {
	p := RetryPolicy{Base: time.Second, Max: 10 * time.Second}
	for n, base := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second} {
		for range 50 {
			if d := p.Delay(n, 0); d < base*8/10 || d > base*12/10 {
				t.Fatalf("Delay(%d) = %s, want %s ±20%%", n, d, base)
			}
		}
	}
	for range 50 {
		if d := p.Delay(10, 0); d < 8*time.Second || d > p.Max {
			t.Fatalf("Delay(10) = %s, want at most Max %s and at least 80%% of it", d, p.Max)
		}
	}
	if d := p.Delay(1, 3*time.Second); d != 3*time.Second {
		t.Errorf("Delay with Retry-After 3s = %s", d)
	}
	if d := p.Delay(1, time.Minute); d != p.Max {
		t.Errorf("Delay with Retry-After 1m = %s, want Max", d)
	}
}

// TestRetryDelayFunc: asynq waits our own delay for attempts we scheduled,
// and a short capped backoff for errors before an attempt started.
func TestRetryDelayFunc(t *testing.T) {
	if d := retryDelayFunc(3, &retryError{Delay: 7 * time.Second, Err: errors.New("x")}, nil); d != 7*time.Second {
		t.Errorf("our retry: %s, want 7s", d)
	}
	if d := retryDelayFunc(1, errors.New("db down"), nil); d != 400*time.Millisecond {
		t.Errorf("infrastructure error, first retry: %s, want 400ms", d)
	}
	if d := retryDelayFunc(50, errors.New("db down"), nil); d != 30*time.Second {
		t.Errorf("infrastructure error, 50th retry: %s, want the 30s cap", d)
	}
}
