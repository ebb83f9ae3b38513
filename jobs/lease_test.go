package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/llmsched/llm-scheduler/jobs"
)

func leasePair(t *testing.T, ttl time.Duration) (*miniredis.Miniredis, *jobs.Lease, *jobs.Lease) {
	t.Helper()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	a, b := jobs.NewLease(rdb, "lt:leader", ttl), jobs.NewLease(rdb, "lt:leader", ttl)
	if a.Token() == b.Token() {
		t.Fatalf("two leases got the same owner token %q", a.Token())
	}
	return mr, a, b
}

func mustLease(t *testing.T, what string, want bool, got bool, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if got != want {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

// TestLeaseNonOwnerCannotRenewOrRelease: while one owner holds the lease,
// another can neither take, renew nor release it; the owner can renew and
// release it, and then the other takes it.
func TestLeaseNonOwnerCannotRenewOrRelease(t *testing.T) {
	mr, a, b := leasePair(t, 10*time.Second)
	ctx := context.Background()
	ok, err := a.Acquire(ctx)
	mustLease(t, "a acquires the free lease", true, ok, err)
	if !a.Held() {
		t.Fatal("a acquired the lease but does not count it as held")
	}
	ok, err = b.Acquire(ctx)
	mustLease(t, "b acquires a's lease", false, ok, err)
	ok, err = b.Renew(ctx)
	mustLease(t, "b renews a's lease", false, ok, err)
	ok, err = b.Release(ctx)
	mustLease(t, "b releases a's lease", false, ok, err)
	if b.Held() {
		t.Fatal("b counts a's lease as held")
	}
	if v, _ := mr.Get("lt:leader"); v != a.Token() {
		t.Fatalf("after b's tries the key holds %q, want a's token %q", v, a.Token())
	}
	// b's failed renewal must not have extended it either.
	mr.FastForward(6 * time.Second)
	ok, err = a.Renew(ctx)
	mustLease(t, "a renews", true, ok, err)
	if ttl := mr.TTL("lt:leader"); ttl != 10*time.Second {
		t.Fatalf("after a's renewal the key's ttl is %s, want 10s", ttl)
	}
	ok, err = a.Release(ctx)
	mustLease(t, "a releases", true, ok, err)
	if mr.Exists("lt:leader") || a.Held() {
		t.Fatal("a released the lease but the key is still there or a still counts it held")
	}
	ok, err = b.Acquire(ctx)
	mustLease(t, "b acquires the released lease", true, ok, err)
	ok, err = a.Release(ctx)
	mustLease(t, "a releases b's lease", false, ok, err)
	if v, _ := mr.Get("lt:leader"); v != b.Token() {
		t.Fatalf("after a's release of b's lease the key holds %q, want b's token", v)
	}
}

// TestLeaseTakeoverAfterExpiry: an owner that stops renewing loses the
// lease once it expires; another takes it, and the old owner's renewal
// then fails (it learns that it lost the lease) and does not steal it back.
func TestLeaseTakeoverAfterExpiry(t *testing.T) {
	mr, a, b := leasePair(t, 3*time.Second)
	ctx := context.Background()
	ok, err := a.Acquire(ctx)
	mustLease(t, "a acquires", true, ok, err)
	mr.FastForward(2 * time.Second)
	ok, err = b.Acquire(ctx)
	mustLease(t, "b acquires before the expiry", false, ok, err)
	mr.FastForward(1100 * time.Millisecond)
	ok, err = b.Acquire(ctx)
	mustLease(t, "b acquires after the expiry", true, ok, err)
	ok, err = a.Renew(ctx)
	mustLease(t, "a renews the lease b took over", false, ok, err)
	if a.Held() {
		t.Fatal("a still counts the lease as held after a failed renewal")
	}
	if v, _ := mr.Get("lt:leader"); v != b.Token() {
		t.Fatalf("the key holds %q, want b's token", v)
	}
	// Acquiring again as the owner extends the lease (a leader that lost
	// its renewal's answer asks again).
	mr.FastForward(2 * time.Second)
	ok, err = b.Acquire(ctx)
	mustLease(t, "b acquires its own lease again", true, ok, err)
	if ttl := mr.TTL("lt:leader"); ttl != 3*time.Second {
		t.Fatalf("b's second acquire left the ttl at %s, want 3s", ttl)
	}
}
