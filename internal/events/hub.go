package events

import (
	"errors"
	"sync"
	"sync/atomic"
)

// ErrOverflow closes a subscription whose reader fell a whole buffer behind.
var ErrOverflow = errors.New("subscriber too slow: event buffer overflowed, resubscribe")

// DefaultBuffer is a subscription's buffer when none is given.
const DefaultBuffer = 256

// TaskBuffer is the buffer for a subscription to one task's transitions
// (a few per attempt; the reader is closed with ErrOverflow only if it
// falls this far behind on one task).
const TaskBuffer = 32

// Subscription receives events until Close, or until it overflows.
type Subscription[T any] struct {
	// C delivers events. It is closed when the subscription ends.
	C <-chan T

	c      chan T
	err    atomic.Pointer[error]
	once   sync.Once
	remove func()
	match  func(T) bool
}

// Err says why C was closed: nil after Close, ErrOverflow after an overflow.
func (s *Subscription[T]) Err() error {
	if p := s.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Close ends the subscription and releases it. It is safe to call twice.
func (s *Subscription[T]) Close() { s.end(nil) }

func (s *Subscription[T]) end(err error) {
	s.once.Do(func() {
		if err != nil {
			s.err.Store(&err)
		}
		s.remove()
	})
}

// hub fans events of one kind out to local subscribers, keyed by task id
// (0 for subscribers to every task). Send never blocks.
type hub[T any] struct {
	mu   sync.RWMutex
	subs map[int]map[*Subscription[T]]struct{}
	n    atomic.Int64
}

func newHub[T any]() *hub[T] { return &hub[T]{subs: make(map[int]map[*Subscription[T]]struct{})} }

func (h *hub[T]) subscribe(key int, buf int, match func(T) bool) *Subscription[T] {
	if buf <= 0 {
		buf = DefaultBuffer
	}
	c := make(chan T, buf)
	s := &Subscription[T]{C: c, c: c, match: match}
	s.remove = func() {
		h.mu.Lock()
		if set := h.subs[key]; set != nil {
			if _, ok := set[s]; ok {
				delete(set, s)
				h.n.Add(-1)
				close(s.c)
			}
			if len(set) == 0 {
				delete(h.subs, key)
			}
		}
		h.mu.Unlock()
	}
	h.mu.Lock()
	set := h.subs[key]
	if set == nil {
		set = make(map[*Subscription[T]]struct{})
		h.subs[key] = set
	}
	set[s] = struct{}{}
	h.n.Add(1)
	h.mu.Unlock()
	return s
}

// send delivers v to the subscribers of key and to those of every task.
func (h *hub[T]) send(key int, v T) {
	var overflowed []*Subscription[T]
	h.mu.RLock()
	for _, k := range [2]int{key, 0} {
		for s := range h.subs[k] {
			if s.match != nil && !s.match(v) {
				continue
			}
			select {
			case s.c <- v:
			default:
				overflowed = append(overflowed, s)
			}
		}
		if key == 0 {
			break
		}
	}
	h.mu.RUnlock()
	for _, s := range overflowed {
		s.end(ErrOverflow)
	}
}

func (h *hub[T]) count() int { return int(h.n.Load()) }
