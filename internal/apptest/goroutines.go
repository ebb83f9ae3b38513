package apptest

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Goroutines counts the goroutines with frame in their stack, a function
// as a stack trace names it followed by "(" (e.g.
// "jobs.(*Reconciler).run("), so that closures inside it do not count.
// A goroutine running at that instant on another thread shows no stack:
// the count may miss it (see sampled).
func Goroutines(frame string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, frame) {
			count++
		}
	}
	return count
}

// sampled counts the goroutines running frame a few times over 50ms and
// returns the least and the most counted: a goroutine is missed only
// while it runs, which a loop waiting for its next round rarely does.
func sampled(frame string) (least, most int) {
	least = -1
	for range 10 {
		n := Goroutines(frame)
		if least < 0 || n < least {
			least = n
		}
		most = max(most, n)
		time.Sleep(5 * time.Millisecond)
	}
	return least, most
}

// Component is a background part with its own goroutine.
type Component interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// CheckStopEndsGoroutine starts c, waits for its goroutine (one more
// goroutine running frame, see Goroutines), stops it and checks that the
// goroutine is gone when Stop returns.
func CheckStopEndsGoroutine(t testing.TB, c Component, frame string) {
	t.Helper()
	_, before := sampled(frame)
	if err := c.Start(context.Background()); err != nil {
		t.Fatalf("start: %v", err)
	}
	for deadline := time.Now().Add(5 * time.Second); Goroutines(frame) < before+1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines run %s after Start, want %d", Goroutines(frame), frame, before+1)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if n, _ := sampled(frame); n > before {
		t.Errorf("%d goroutines run %s after Stop returned, want %d", n, frame, before)
	}
}
