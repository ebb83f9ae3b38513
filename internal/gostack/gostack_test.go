package gostack_test

import (
	"sync"
	"testing"

	"github.com/llmsched/llm-scheduler/internal/gostack"
)

// deep recurses n frames of about 256 bytes each, like a handler going
// through ent, the SQL driver and go-redis.
//
//go:noinline
func deep(n int) byte {
	var frame [256]byte
	frame[n&255] = byte(n)
	if n == 0 {
		return frame[0]
	}
	return deep(n-1) + frame[n&255]
}

// BenchmarkDeepWorkOnAFreshGoroutine runs 24 KB deep work on a new
// goroutine, as asynq runs a task handler, with and without growing the
// stack first.
func BenchmarkDeepWorkOnAFreshGoroutine(b *testing.B) {
	for _, grow := range []bool{false, true} {
		name := "as started"
		if grow {
			name = "grown first"
		}
		b.Run(name, func(b *testing.B) {
			var wg sync.WaitGroup
			for b.Loop() {
				wg.Go(func() {
					if grow {
						gostack.Grow()
					}
					deep(96)
				})
				wg.Wait()
			}
		})
	}
}
