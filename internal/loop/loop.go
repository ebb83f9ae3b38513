// Package loop owns the goroutine of a background component written as a
// loop that returns when its context ends (the reconciler, the due
// scanner, the webhook sender): Start starts it, Stop ends it and waits
// for it to return, within Stop's deadline.
package loop

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Loop runs one function in a goroutine of its own. The zero Loop is
// ready to start.
type Loop struct {
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// ErrRunning is returned by Start while the loop runs.
var ErrRunning = errors.New("loop already running")

// Start runs run in a new goroutine under ctx without its cancellation:
// only Stop ends it.
func (l *Loop) Start(ctx context.Context, run func(context.Context)) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done != nil {
		return ErrRunning
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	l.cancel, l.done = cancel, done
	go func() {
		defer close(done)
		run(ctx)
	}()
	return nil
}

// Stop ends the loop's context and waits until run returned, or until ctx
// ends (the error then says so, and a later Stop waits again). Stopping a
// loop that does not run is a no-op.
func (l *Loop) Stop(ctx context.Context) error {
	l.mu.Lock()
	cancel, done := l.cancel, l.done
	l.mu.Unlock()
	if done == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("loop did not return: %w", ctx.Err())
	}
	l.mu.Lock()
	if l.done == done {
		l.cancel, l.done = nil, nil
	}
	l.mu.Unlock()
	return nil
}

// Sleep waits d, or until ctx ends (its error).
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
