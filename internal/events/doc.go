// Package events is the scheduler's event bus. Every task transition and
// every streamed output chunk is published on Redis pub/sub, so an api
// process delivers what a worker process produced. Inside a process, a hub
// fans events out to subscribers through bounded buffers and never blocks the
// publisher: a subscriber that falls a whole buffer behind is closed with
// ErrOverflow and must resubscribe (it then reads the current state first).
package events
