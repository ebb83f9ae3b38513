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
