package scheduler

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// TestBackgroundCloseEndsAndWaitsForItsGoroutines: a refresh sees its
// context end at Close, Close returns only once it has returned, and
// nothing starts afterwards (the caller does the work itself).
func TestBackgroundCloseEndsAndWaitsForItsGoroutines(t *testing.T) {
	bg := newBackground()
	var returned atomic.Bool
	started := make(chan struct{})
	if !bg.spawn(func() {
		close(started)
		<-bg.ctx.Done()
		time.Sleep(20 * time.Millisecond) // a refresh winding down
		returned.Store(true)
	}) {
		t.Fatal("spawn before Close refused")
	}
	<-started
	if err := bg.close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !returned.Load() {
		t.Error("Close returned before the goroutine it owns")
	}
	if bg.spawn(func() { t.Error("ran after Close") }) {
		t.Error("spawn after Close accepted")
	}
}

func TestBackgroundCloseGivesUpWithItsContext(t *testing.T) {
	bg := newBackground()
	release := make(chan struct{})
	bg.spawn(func() { <-release }) // ignores the context: a hand-off mid-batch
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := bg.close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("close = %v, want %v", err, context.DeadlineExceeded)
	}
	close(release)
	if err := bg.close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestGroupHandOffAfterCloseRunsInTheCaller: calls queued behind a batch
// are still flushed once the service is closed, by the caller that held
// the lane, with no goroutine.
func TestGroupHandOffAfterCloseRunsInTheCaller(t *testing.T) {
	bg := newBackground()
	if err := bg.close(context.Background()); err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	g := newGroup(bg, 1, 10, func(_ context.Context, ins []int) []result[int] {
		if first.CompareAndSwap(false, true) {
			close(entered)
			<-release
		}
		res := make([]result[int], len(ins))
		for i, v := range ins {
			res[i].out = v
		}
		return res
	})
	done := make(chan int, 2)
	go func() { v, _ := g.do(context.Background(), 1); done <- v }()
	<-entered
	go func() { v, _ := g.do(context.Background(), 2); done <- v }()
	for { // the second call is queued behind the first batch
		g.mu.Lock()
		n := len(g.waiting)
		g.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	got := <-done + <-done
	if got != 3 {
		t.Errorf("results sum to %d, want 3", got)
	}
}
