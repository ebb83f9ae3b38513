package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/llmsched/llm-scheduler/internal/events"
	"github.com/llmsched/llm-scheduler/internal/providers"
)

// streamer coalesces output chunks into bus messages at most every 50ms,
// so a fast provider does not flood Redis while a slow one streams live.
type streamer struct {
	bus     *events.Bus
	taskID  int
	attempt int
	log     *slog.Logger

	// frontDoor: the chunks carry the provider's own (raw), and the last
	// one says how the attempt ended (close).
	frontDoor bool

	mu    sync.Mutex
	buf   []byte
	raw   []json.RawMessage
	seq   int
	last  time.Time
	timer *time.Timer
}

const streamFlushEvery = 50 * time.Millisecond

func newStreamer(bus *events.Bus, taskID, attempt int, log *slog.Logger) *streamer {
	return &streamer{bus: bus, taskID: taskID, attempt: attempt, log: log}
}

func (s *streamer) add(chunk string) error { return s.addRaw(nil, chunk) }

// addRaw adds a chunk as the provider sent it (nil: none) with its text.
func (s *streamer) addRaw(raw []byte, chunk string) error {
	if s.bus == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = append(s.buf, chunk...)
	if raw != nil {
		s.raw = append(s.raw, json.RawMessage(bytes.Clone(raw)))
	}
	if time.Since(s.last) >= streamFlushEvery {
		s.flushLocked(context.Background(), false)
	} else if s.timer == nil {
		s.timer = time.AfterFunc(streamFlushEvery, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.timer = nil
			if len(s.buf) > 0 || len(s.raw) > 0 {
				s.flushLocked(context.Background(), false)
			}
		})
	}
	return nil
}

func (s *streamer) flushLocked(ctx context.Context, done bool) {
	s.publishLocked(ctx, events.OutputChunk{Done: done})
}

func (s *streamer) publishLocked(ctx context.Context, c events.OutputChunk) {
	s.seq++
	c.TaskID, c.Attempt, c.Seq, c.Text, c.Raw = s.taskID, s.attempt, s.seq, string(s.buf), s.raw
	s.buf, s.raw = s.buf[:0], nil
	s.last = time.Now()
	if err := s.bus.PublishOutput(ctx, c); err != nil {
		s.log.Debug("publish output chunk", "task_id", s.taskID, "err", err)
	}
}

// close sends what is left, marked Done. A front-door task's last chunk
// is always sent: it carries the provider's whole answer when it was not
// streamed, or the status of the provider error that ended the attempt.
//
// It reports whether the attempt published any chunk.
func (s *streamer) close(ctx context.Context, res providers.Result, err error) bool {
	if s.bus == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	switch {
	case s.frontDoor:
		last := events.OutputChunk{Done: true, Answer: res.Raw}
		if _, pe := providers.Classify(err); err != nil && pe != nil {
			last.Status, last.Answer = pe.Status, nil
		}
		s.publishLocked(ctx, last)
	case len(s.buf) > 0 || s.seq > 0:
		s.flushLocked(ctx, true)
	}
	return s.seq > 0
}
