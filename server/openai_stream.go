package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/events"
)

// chatStream writes a streamed chat completion as server-sent events, as
// OpenAI does: one `data: {chat.completion.chunk}` event per chunk, then
// `data: [DONE]`. A provider that speaks OpenAI's protocol streams its own
// chunks, passed on as they are; for the others (simulator, custom) the
// chunks are made here from the streamed text.
//
// The status line waits for the first chunk, so that a request refused or
// failed before any output (queue timeout, a provider's error) gets its
// HTTP status; after it, an error is an `data: {"error":{...}}` event,
// which OpenAI's SDKs raise.
type chatStream struct {
	w            http.ResponseWriter
	rc           *http.ResponseController
	taskID       int
	model        string
	created      int64
	includeUsage bool

	open    bool // the status line and headers are out
	attempt int  // the attempt whose chunks were written, 0 before any
	raw     bool // the chunks written were the provider's own
	text    strings.Builder
}

// errRestarted ends a stream whose task began a new attempt after output
// of the previous one was written: the client cannot take the answer
// back, so it gets an error instead of two answers spliced together.
var errRestarted = errors.New("restarted")

func (s *chatStream) begin() {
	if s.open {
		return
	}
	h := s.w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // tell reverse proxies not to buffer
	s.w.WriteHeader(http.StatusOK)
	s.open = true
}

func (s *chatStream) event(data []byte) error {
	if _, err := fmt.Fprintf(s.w, "data: %s\n\n", data); err != nil {
		return err
	}
	return nil
}

func (s *chatStream) flush() error {
	if err := s.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

// made is a chunk made here, in OpenAI's chat.completion.chunk shape.
func (s *chatStream) made(delta map[string]any, finish any, usage map[string]any) []byte {
	choices := []any{}
	if delta != nil {
		choices = []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": nil}}
	}
	c := map[string]any{"id": chatID(s.taskID), "object": "chat.completion.chunk", "created": s.created,
		"model": s.model, "system_fingerprint": nil, "choices": choices}
	if usage != nil {
		c["usage"] = usage
	}
	raw, _ := json.Marshal(c) // maps of strings and numbers always encode
	return raw
}

// usageOnly reports whether a provider chunk is the usage chunk that
// stream_options.include_usage asks for (no choices, a usage).
func usageOnly(raw []byte) bool {
	var c struct {
		Choices []json.RawMessage `json:"choices"`
		Usage   json.RawMessage   `json:"usage"`
	}
	if json.Unmarshal(raw, &c) != nil {
		return false
	}
	return len(c.Choices) == 0 && len(c.Usage) > 0 && string(c.Usage) != "null"
}

// chunk writes one output chunk of the task.
func (s *chatStream) chunk(c events.OutputChunk) error {
	if len(c.Raw) == 0 && c.Text == "" {
		return nil
	}
	if s.attempt != 0 && c.Attempt != s.attempt {
		return errRestarted
	}
	s.attempt = c.Attempt
	s.begin()
	if len(c.Raw) > 0 {
		s.raw = true
		for _, raw := range c.Raw {
			if !s.includeUsage && usageOnly(raw) {
				continue // the client did not ask for it; the scheduler did
			}
			if err := s.event(raw); err != nil {
				return err
			}
		}
		return s.flush()
	}
	if s.text.Len() == 0 {
		if err := s.event(s.made(map[string]any{"role": "assistant", "content": "", "refusal": nil}, nil, nil)); err != nil {
			return err
		}
	}
	s.text.WriteString(c.Text)
	if err := s.event(s.made(map[string]any{"content": c.Text}, nil, nil)); err != nil {
		return err
	}
	return s.flush()
}

// finish ends the stream of a completed task: the provider's own chunks
// ended with their finish chunk; made ones get the rest of the stored
// output (chunks the bus did not deliver), a finish chunk and usage.
func (s *chatStream) finish(t *ent.Task) error {
	s.begin()
	if !s.raw {
		if s.attempt != 0 && s.attempt != t.Attempts {
			return errRestarted
		}
		done := s.text.String()
		if !strings.HasPrefix(t.Output, done) {
			return fmt.Errorf("the streamed output of task %d does not match its stored output", t.ID)
		}
		if s.text.Len() == 0 {
			if err := s.event(s.made(map[string]any{"role": "assistant", "content": "", "refusal": nil}, nil, nil)); err != nil {
				return err
			}
		}
		if rest := t.Output[len(done):]; rest != "" {
			if err := s.event(s.made(map[string]any{"content": rest}, nil, nil)); err != nil {
				return err
			}
		}
		if err := s.event(s.made(map[string]any{}, "stop", nil)); err != nil {
			return err
		}
		if s.includeUsage {
			if err := s.event(s.made(nil, nil, usageOf(t))); err != nil {
				return err
			}
		}
	}
	if err := s.event([]byte("[DONE]")); err != nil {
		return err
	}
	return s.flush()
}

// streamChat answers a chat request with stream: true.
func (d *openaiDoor) streamChat(w http.ResponseWriter, r *http.Request, f *follower, c chatRequest, deadline time.Time, timeout time.Duration) {
	ctx := r.Context()
	s := &chatStream{w: w, rc: http.NewResponseController(w), taskID: f.taskID(), model: c.model,
		created: time.Now().Unix(), includeUsage: c.includeUsage}
	// A stream of the provider's own chunks (raw) ends without the
	// stored output; one made from text (a simulator or custom model)
	// ends with what the stream did not carry, read from the task.
	end, err := d.wait(ctx, f, deadline, s.chunk, func(ending) bool { return s.raw })
	if err == nil {
		switch {
		case end.task.Status != domain.StatusCompleted:
			err = endError(end)
		case end.lostOutput && s.raw:
			err = fmt.Errorf("output chunks of task %d were lost on the way (the reader fell behind)", s.taskID)
		default:
			err = s.finish(end.task)
		}
	}
	switch {
	case err == nil || ctx.Err() != nil:
		return // done, or the client went away (its task was cancelled)
	case errors.Is(err, errQueueTimeout):
		err = queueTimeoutError(s.taskID, timeout)
	case errors.Is(err, errRestarted):
		d.cancel(s.taskID, "its stream cannot be restarted")
		err = &openAIError{Status: http.StatusInternalServerError, Type: "server_error", Code: "stream_interrupted",
			Message: fmt.Sprintf("task %d failed mid-stream and began a new attempt; a streamed answer cannot be restarted, so the stream ends here (the task was cancelled)", s.taskID)}
	}
	if !s.open {
		d.fail(w, r, err, nil)
		return
	}
	e := toOpenAIError(err, nil)
	raw, _ := json.Marshal(openAIErrorBody(e, e.Message))
	if werr := s.event(raw); werr == nil {
		_ = s.flush() // the client may be gone; nothing else to tell it
	}
	d.cancel(s.taskID, "its stream ended with an error")
}
