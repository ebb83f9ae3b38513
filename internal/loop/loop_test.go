package loop_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/llmsched/llm-scheduler/internal/loop"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestStopEndsTheGoroutine: Stop cancels the loop's context and returns
// once the loop did; the goroutine is gone (goleak checks at the end).
func TestStopEndsTheGoroutine(t *testing.T) {
	var l loop.Loop
	ran := make(chan struct{})
	ended := false
	if err := l.Start(context.Background(), func(ctx context.Context) {
		close(ran)
		<-ctx.Done()
		ended = true
	}); err != nil {
		t.Fatal(err)
	}
	<-ran
	if err := l.Start(context.Background(), func(context.Context) {}); !errors.Is(err, loop.ErrRunning) {
		t.Errorf("second Start: %v, want ErrRunning", err)
	}
	if err := l.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !ended {
		t.Error("Stop returned before the loop did")
	}
	if err := l.Stop(context.Background()); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// TestStartIgnoresTheCallersCancel: the loop ends on Stop, not when the
// context Start was given ends.
func TestStartIgnoresTheCallersCancel(t *testing.T) {
	var l loop.Loop
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan struct{})
	if err := l.Start(ctx, func(ctx context.Context) { <-ctx.Done(); close(ended) }); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-ended:
		t.Fatal("the loop ended with Start's context")
	case <-time.After(50 * time.Millisecond):
	}
	if err := l.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestStopGivesUpAtItsDeadline: a loop that does not return makes Stop
// fail at its deadline, and a later Stop waits for it again.
func TestStopGivesUpAtItsDeadline(t *testing.T) {
	var l loop.Loop
	release := make(chan struct{})
	if err := l.Start(context.Background(), func(context.Context) { <-release }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := l.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stop of a stuck loop: %v, want the deadline", err)
	}
	close(release)
	if err := l.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}
