// Package gostack grows a goroutine's stack ahead of deep work.
//
// A goroutine starts with a small stack (the average of the stacks the
// garbage collector last scanned, most of them parked at shallow depth)
// and doubles it each time a call does not fit, copying the whole stack
// and adjusting every frame on it. A task handler on asynq's fresh
// goroutine, or a group flush handed to a new goroutine, runs ent, the SQL
// driver and go-redis many frames deep: each grew its stack two or three
// times, deep in those calls, and the copies were 6% of the samples in an
// in-process profile of the bench's end-to-end run. Grow, called first
// thing on such a goroutine, takes the stack to its working size in one
// copy of a shallow stack (docs/performance.md).
package gostack

// growFrame is the stack frame Grow needs: the stack is grown to fit it
// (with what is already in use) in one step, to 64 KB from the usual
// start, which covers the deepest paths a handler takes.
const growFrame = 32 << 10

// index keeps the compiler from dropping Grow's frame: touch cannot know
// which element it writes. It is only read, so concurrent Grows do not
// race.
var index = 1

// Grow grows the calling goroutine's stack to fit a 32 KB frame on top of
// what it uses now. Every call also clears that frame (Go zeroes it), a
// microsecond or so, so it belongs first thing on a fresh goroutine, once.
//
//go:noinline
func Grow() {
	var frame [growFrame]byte
	touch(&frame)
}

// touch writes one element of the frame, which does not escape: it stays
// on Grow's stack.
//
//go:noinline
func touch(frame *[growFrame]byte) { frame[index&(growFrame-1)] = 1 }
