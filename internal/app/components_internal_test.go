package app

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/llmsched/llm-scheduler/internal/loop"
)

// TestComponentsStopInReverseWithinTheirDeadlines: what started last stops
// first (the bus, started first, outlives what publishes), a loop's
// context ends when it is stopped, and one that does not return within
// its deadline is reported without holding up the others.
func TestComponentsStopInReverseWithinTheirDeadlines(t *testing.T) {
	a := &App{Log: slog.New(slog.DiscardHandler)}
	var order []string
	a.started("bus", time.Second, func(context.Context) error { order = append(order, "bus"); return nil })
	var running, stuckLoop loop.Loop
	if err := running.Start(context.Background(), func(ctx context.Context) {
		<-ctx.Done()
		order = append(order, "loop")
	}); err != nil {
		t.Fatal(err)
	}
	a.started("loop", time.Second, running.Stop)
	stuck := make(chan struct{})
	defer close(stuck)
	if err := stuckLoop.Start(context.Background(), func(context.Context) { <-stuck }); err != nil {
		t.Fatal(err)
	}
	a.started("stuck", 20*time.Millisecond, stuckLoop.Stop)

	began := time.Now()
	err := a.stopComponents(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("stop = %v, want the stuck loop's deadline", err)
	}
	if took := time.Since(began); took > 500*time.Millisecond {
		t.Errorf("stopping took %s; the stuck loop's deadline is 20ms", took)
	}
	if diff := cmp.Diff([]string{"loop", "bus"}, order); diff != "" {
		t.Errorf("stop order (-want +got):\n%s", diff)
	}
}
