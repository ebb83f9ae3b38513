package jobs

import (
	"context"
	"log/slog"
	"testing"
	"time"
)

// TestHeartbeatsRenewHeldLeasesAndNoneAfterRelease: a round renews a
// lease held for at least half a period (here the lease was lost, and
// the renewal re-creates it), skips one renewed more recently, and never
// renews a lease whose attempt has ended, even one the round had already
// listed: the heartbeat script re-creates a missing lease, which would
// hold a released slot for a whole TTL. Breakage caught: renewing every
// listed lease (the released one comes back), or none.
func TestHeartbeatsRenewHeldLeasesAndNoneAfterRelease(t *testing.T) {
	s := newTestSlots(t)
	ctx := context.Background()
	leases := s.keys(1)[1]
	h := newHeartbeats(s, 3*time.Second, slog.New(slog.DiscardHandler))
	leased := func(task string) bool {
		t.Helper()
		_, err := s.rdb.ZScore(ctx, leases, task).Result()
		return err == nil
	}
	held := func() *heldLease {
		t.Helper()
		h.mu.Lock()
		defer h.mu.Unlock()
		for l := range h.held {
			return l
		}
		t.Fatal("no lease held")
		return nil
	}

	release := h.hold(1, 7)
	start := held().renewed
	h.round(ctx, start.Add(h.every/4))
	if leased("7") {
		t.Fatal("a lease held for a quarter of a period was renewed")
	}
	h.round(ctx, start.Add(h.every))
	if !leased("7") {
		t.Fatal("a lease held for a whole period was not renewed")
	}

	// The attempt ends after a round listed its lease: the release frees
	// the slot, and the listed renewal must not bring the lease back.
	l := held()
	release()
	if err := s.rdb.ZRem(ctx, leases, "7").Err(); err != nil {
		t.Fatal(err)
	}
	h.renew(ctx, l, start.Add(3*h.every))
	if leased("7") {
		t.Fatal("a released lease was renewed")
	}
	h.mu.Lock()
	n := len(h.held)
	h.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d leases held after the release, want 0", n)
	}
}
