package app

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestComponentsStopInReverseWithinTheirDeadlines: what started last stops
// first (the bus, started first, outlives what publishes), a loop's
// context ends when it is stopped, and one that does not return within
// its deadline is reported without holding up the others.
func TestComponentsStopInReverseWithinTheirDeadlines(t *testing.T) {
	a := &App{Log: slog.New(slog.DiscardHandler)}
	var order []string
	a.started("bus", time.Second, func(context.Context) error { order = append(order, "bus"); return nil })
	a.startLoop(context.Background(), "loop", time.Second, func(ctx context.Context) {
		<-ctx.Done()
		order = append(order, "loop")
	})
	stuck := make(chan struct{})
	defer close(stuck)
	a.startLoop(context.Background(), "stuck", 20*time.Millisecond, func(context.Context) { <-stuck })

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
