package scheduler

import (
	"context"
	"sync"
)

// background owns the goroutines a Service starts on its own: the
// refreshes of its caches (modelcache.go, backlog.go, counts.go) and the
// group-commit hand-offs (group.go). They start only off the idle path (a
// cache entry past its TTL, a batch queued behind another), so tracking
// them costs nothing per call. Service.Close stops them: refreshes see
// their context end, hand-offs finish their batch, and Close waits for
// both.
type background struct {
	ctx    context.Context // ends at Close
	cancel context.CancelFunc

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

func newBackground() *background {
	ctx, cancel := context.WithCancel(context.Background())
	return &background{ctx: ctx, cancel: cancel}
}

// spawn runs f on a goroutine Close waits for. After Close it runs
// nothing and reports false: the caller does the work itself or skips it.
func (b *background) spawn(f func()) bool {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return false
	}
	b.wg.Add(1)
	b.mu.Unlock()
	go func() {
		defer b.wg.Done()
		f()
	}()
	return true
}

// close ends the refreshes' context and waits for every goroutine spawn
// started, or for ctx to end.
func (b *background) close(ctx context.Context) error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.cancel()
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
