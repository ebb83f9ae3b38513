package chaos

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// leaderWatch reads a cluster's reconciler leader lease and the round
// marker its leader writes (the reconcile window, written every round).
type leaderWatch struct {
	t  *testing.T
	rc *redis.Client
}

func watchLeader(t *testing.T, c *Cluster) *leaderWatch {
	rc := redis.NewClient(&redis.Options{Addr: c.Redis.Addr(), DB: c.RedisDB})
	t.Cleanup(func() { rc.Close() })
	return &leaderWatch{t: t, rc: rc}
}

// owner is the token in the lease key ("" if none) and the pid in it.
func (w *leaderWatch) owner() (string, int) {
	w.t.Helper()
	v, err := w.rc.Get(context.Background(), "chaos:reconciler:lock").Result()
	if errors.Is(err, redis.Nil) {
		return "", 0
	}
	if err != nil {
		w.t.Fatalf("read the leader lease: %v", err)
	}
	parts := strings.Split(v, ":") // host:pid:random
	if len(parts) < 3 {
		w.t.Fatalf("leader lease holds %q, want an owner token host:pid:random", v)
	}
	pid, err := strconv.Atoi(parts[len(parts)-2])
	if err != nil {
		w.t.Fatalf("leader lease holds %q, want an owner token host:pid:random", v)
	}
	return v, pid
}

// waitOwner waits until process p holds the lease.
func (w *leaderWatch) waitOwner(p *Proc, timeout time.Duration) string {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		tok, pid := w.owner()
		if pid == p.PID {
			return tok
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("process %d did not take the leader lease within %s (held by %q)", p.PID, timeout, tok)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// round is the leader's last round marker.
func (w *leaderWatch) round() string {
	w.t.Helper()
	v, err := w.rc.Get(context.Background(), "chaos:reconciler:window").Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		w.t.Fatalf("read the reconcile window: %v", err)
	}
	return v
}

// waitRound waits until a round after the marker was: someone reconciles.
func (w *leaderWatch) waitRound(was string, timeout time.Duration) {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	for w.round() == was {
		if time.Now().After(deadline) {
			w.t.Fatalf("no reconcile round within %s (window still %q)", timeout, was)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitLog waits until process p has logged text.
func waitLog(t *testing.T, p *Proc, text string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(readFile(p.LogPath), text) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d did not log %q within %s", p.PID, text, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const tookLease = "took the leader lease"

// TestReconcilerLeaderKilledIsReplacedAfterExpiry: two worker processes
// (the real binary); one holds the reconciler's leader lease and renews
// it, so over several lease periods the other never takes it. The leader
// is killed with SIGKILL: its lease stays until it expires (nobody
// released it), then the other process takes it and reconciles.
// Breakages caught: no renewal (the lease expires under a live leader and
// the other takes it), no owner check (the second process takes or
// extends a held lease), no takeover after expiry.
func TestReconcilerLeaderKilledIsReplacedAfterExpiry(t *testing.T) {
	const ttl = 3 * time.Second
	c := NewCluster(t, Settings{LeaseTTL: 3 * time.Second, ShutdownGrace: 2 * time.Second, WorkerCapacity: 2})
	w := watchLeader(t, c)
	env := "QUEUE_LEADER_LEASE_TTL=" + ttl.String()
	leader := c.Start("worker", env)
	tok := w.waitOwner(leader, 60*time.Second)
	other := c.Start("worker", env)

	// Three lease periods: only renewals keep the leader's token there,
	// without a gap.
	watchUntil := time.Now().Add(3 * ttl)
	for time.Now().Before(watchUntil) {
		if now, _ := w.owner(); now != tok {
			t.Fatalf("the lease changed from %q to %q while its leader ran", tok, now)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if strings.Contains(readFile(other.LogPath), tookLease) {
		t.Fatalf("the second process logged %q while the leader ran", tookLease)
	}
	if strings.Contains(readFile(leader.LogPath), "lost the leader lease") {
		t.Fatal("the leader lost its lease while it ran: renewals did not keep it")
	}

	leader.Kill()
	if now, _ := w.owner(); now != tok {
		t.Fatalf("right after the SIGKILL the lease holds %q, want the killed leader's %q until it expires", now, tok)
	}
	w.waitOwner(other, 60*time.Second)
	waitLog(t, other, tookLease, 30*time.Second)
	w.waitRound(w.round(), 60*time.Second)
}

// TestReconcilerLeaderStoppedHandsOverAtOnce: a leader stopped with
// SIGTERM releases its lease, so the other process takes it at its next
// try, not when the lease (five minutes here) would have expired.
func TestReconcilerLeaderStoppedHandsOverAtOnce(t *testing.T) {
	c := NewCluster(t, Settings{LeaseTTL: 3 * time.Second, ShutdownGrace: 2 * time.Second, WorkerCapacity: 2})
	w := watchLeader(t, c)
	env := "QUEUE_LEADER_LEASE_TTL=5m"
	leader := c.Start("worker", env)
	tok := w.waitOwner(leader, 60*time.Second)
	other := c.Start("worker", env)

	leader.Term()
	if err := leader.Wait(60 * time.Second); err != nil {
		t.Fatalf("leader did not exit cleanly after SIGTERM: %v", err)
	}
	if now, _ := w.owner(); now == tok {
		t.Fatalf("the stopped leader's lease %q is still there: it was not released", tok)
	}
	if !strings.Contains(readFile(leader.LogPath), "released the leader lease") {
		t.Fatal("the stopped leader (exited) did not log that it released the lease")
	}
	// Well inside the five-minute lease: only a release lets it through.
	w.waitOwner(other, time.Minute)
	w.waitRound(w.round(), time.Minute)
}
