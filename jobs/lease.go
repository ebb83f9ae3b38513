package jobs

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Lease is a leader lease in one Redis key: the key holds the owner's
// token and expires after ttl unless the owner renews it. Only the owner
// can renew or release it; anyone can take it once it expired or was
// released. The reconciler runs under one (Reconciler.Start).
//
// The owner counts the lease as held until validUntil: the time it sent
// its last successful acquire or renewal, plus ttl. Redis started the
// key's ttl later than that, so the owner stops counting on the lease
// before Redis lets anyone else take it (clocks on one host, or running at
// the same rate, assumed).
type Lease struct {
	rdb   redis.UniversalClient
	key   string
	token string
	ttl   time.Duration

	mu         sync.Mutex
	validUntil time.Time
}

// NewLease makes a lease on key with a fresh owner token (host:pid:random,
// so that a look at the key tells which process holds it).
func NewLease(rdb redis.UniversalClient, key string, ttl time.Duration) *Lease {
	host, _ := os.Hostname()
	return &Lease{rdb: rdb, key: key, ttl: ttl, token: fmt.Sprintf("%s:%d:%s", host, os.Getpid(), rand.Text())}
}

// Token is this owner's token, the value of the key while it holds it.
func (l *Lease) Token() string { return l.token }

// TTL is the lease's time to live.
func (l *Lease) TTL() time.Duration { return l.ttl }

// Held reports whether this owner may act as the leader now.
func (l *Lease) Held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.Now().Before(l.validUntil)
}

// until is the end of the lease as this owner counts it.
func (l *Lease) until() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.validUntil
}

func (l *Lease) set(valid time.Time) {
	l.mu.Lock()
	l.validUntil = valid
	l.mu.Unlock()
}

// Acquire takes the lease if it is free (or already this owner's, which
// extends it). It reports whether this owner holds it now.
func (l *Lease) Acquire(ctx context.Context) (bool, error) {
	return l.call(ctx, leaseAcquireScript, "acquire", l.token, l.ttl.Milliseconds())
}

// Renew extends the lease if this owner still holds it. false means the
// lease is lost (expired, or taken by another owner since).
func (l *Lease) Renew(ctx context.Context) (bool, error) {
	return l.call(ctx, leaseRenewScript, "renew", l.token, l.ttl.Milliseconds())
}

func (l *Lease) call(ctx context.Context, s *redis.Script, what string, args ...any) (bool, error) {
	sent := time.Now()
	n, err := s.Run(ctx, l.rdb, []string{l.key}, args...).Int()
	if err != nil {
		// Held stays as it was: the lease may still be ours, until
		// validUntil at most.
		return false, fmt.Errorf("%s lease %s: %w", what, l.key, err)
	}
	if n == 1 {
		l.set(sent.Add(l.ttl))
		return true, nil
	}
	l.set(time.Time{})
	return false, nil
}

// Release gives the lease up if this owner holds it, so that another
// process can take it at once. It reports whether there was one to give up.
func (l *Lease) Release(ctx context.Context) (bool, error) {
	l.set(time.Time{})
	n, err := leaseReleaseScript.Run(ctx, l.rdb, []string{l.key}, l.token).Int()
	if err != nil {
		return false, fmt.Errorf("release lease %s: %w", l.key, err)
	}
	return n == 1, nil
}
