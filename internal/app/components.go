package app

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// component is a background part of a process that Start started: the
// event bus, the service's own goroutines, the reconciler, the due
// scanner, the webhook sender. Shutdown stops them in the reverse order,
// each within its own deadline, so that what a component uses is still
// running while it stops (the bus outlives everything that publishes).
type component struct {
	name    string
	stop    func(ctx context.Context) error
	timeout time.Duration
}

// started records that a component runs; Shutdown calls stop.
func (a *App) started(name string, timeout time.Duration, stop func(ctx context.Context) error) {
	a.components = append(a.components, component{name: name, stop: stop, timeout: timeout})
}

// startLoop runs a component written as a loop that returns when its
// context ends (Reconciler.Run, DueScanner.Run, webhooks.Sender.Run):
// stopping it ends the context and waits for the loop to return.
func (a *App) startLoop(ctx context.Context, name string, timeout time.Duration, run func(context.Context)) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		run(ctx)
	}()
	a.started(name, timeout, func(sctx context.Context) error {
		cancel()
		select {
		case <-done:
			return nil
		case <-sctx.Done():
			return sctx.Err()
		}
	})
}

// stopComponents stops the components, last started first.
func (a *App) stopComponents(ctx context.Context) error {
	var errs []error
	for i := len(a.components) - 1; i >= 0; i-- {
		c := a.components[i]
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
		err := c.stop(cctx)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("stop %s (deadline %s): %w", c.name, c.timeout, err))
		}
	}
	a.components = nil
	return errors.Join(errs...)
}
