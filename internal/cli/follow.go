package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Subscriptions follow uses: the task's transitions and its output chunks.
const (
	updatesQuery = `subscription($id: ID!) { taskUpdated(id: $id) { status attempts } }`
	outputQuery  = `subscription($id: ID!) { taskOutput(id: $id) { attempt seq text done } }`
)

// progressEvery is how often follow reads the task while it waits, for its
// queue position (which moves without a transition of its own).
const progressEvery = time.Second

// follow waits for a task to end. It learns of transitions and output over
// the GraphQL websocket (polling the REST API if the websocket fails) and
// reads the task's detail view for the progress line. With output, the
// task's output goes to stdout as it streams and progress lines to stderr
// (submit --wait); without, each change of state is a line on stdout
// (watch). With asJSON the final task (and, for watch, each state) is
// printed as JSON instead. The exit code says how the task ended.
func follow(ctx context.Context, cl *client, id int64, asJSON bool, timeout time.Duration, o IO, output bool) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	f := &follower{cl: cl, id: id, asJSON: asJSON, o: o, output: output}
	err := f.run(ctx)
	switch {
	case errors.Is(err, context.DeadlineExceeded) && timeout > 0:
		return fail(ExitTimeout, "task %d did not end within %s (it goes on; task get %d shows it)", id, timeout, id)
	case errors.Is(err, context.Canceled):
		return fail(ExitUnavailable, "interrupted; task %d goes on", id)
	case err != nil:
		return err
	}
	return f.result()
}

type follower struct {
	cl     *client
	id     int64
	asJSON bool
	o      IO
	output bool

	last     *task  // as last read
	shown    string // the last progress line
	attempt  int    // the attempt whose output is streaming
	streamed strings.Builder
	// missed: the stream of this attempt began after its first chunk (the
	// task started before the subscription): it is not shown live, the
	// stored output is printed whole at the end.
	missed bool
}

func (f *follower) run(ctx context.Context) error {
	if err := f.refresh(ctx); err != nil {
		return err
	}
	if f.last.terminal() {
		return nil
	}
	s, err := dialStream(ctx, f.cl)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fmt.Fprintf(f.o.Stderr, "llm-scheduler: no live updates (%v); polling instead\n", err)
		return f.poll(ctx)
	}
	defer s.close()
	vars := map[string]any{"id": f.id}
	if err := s.subscribe("state", updatesQuery, vars); err != nil {
		return f.poll(ctx)
	}
	if f.output && !f.asJSON {
		if err := s.subscribe("output", outputQuery, vars); err != nil {
			return f.poll(ctx)
		}
	}
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	ended := false
	var grace <-chan time.Time // after the end: the last output chunks
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if !ended {
				if err := f.refresh(ctx); err != nil {
					return err
				}
				if f.last.terminal() {
					ended, grace = true, time.After(2*time.Second)
				}
			}
		case <-grace:
			return f.refresh(ctx)
		case m, ok := <-s.msgs:
			if !ok || m.Err != nil {
				if ended {
					return f.refresh(ctx)
				}
				return f.poll(ctx)
			}
			if len(m.Errors) > 0 {
				return fail(ExitRefused, "task %d: %s", f.id, m.Errors[0].Message)
			}
			switch m.ID {
			case "state":
				if m.Complete {
					if !ended {
						ended, grace = true, time.After(2*time.Second)
					}
					if !f.output || f.asJSON {
						return f.refresh(ctx)
					}
					continue
				}
				if err := f.refresh(ctx); err != nil {
					return err
				}
			case "output":
				if m.Complete {
					return f.refresh(ctx)
				}
				f.chunk(m.Data)
			}
		}
	}
}

// chunk writes one output chunk to stdout.
func (f *follower) chunk(data json.RawMessage) {
	var p struct {
		TaskOutput struct {
			Attempt int
			Seq     int
			Text    string
		}
	}
	if json.Unmarshal(data, &p) != nil {
		return
	}
	c := p.TaskOutput
	if c.Attempt != f.attempt {
		if f.streamed.Len() > 0 {
			fmt.Fprintln(f.o.Stdout)
			fmt.Fprintf(f.o.Stderr, "attempt %d starts over\n", c.Attempt)
		}
		f.attempt = c.Attempt
		f.streamed.Reset()
		f.missed = c.Seq > 1
	}
	if f.missed {
		return
	}
	f.streamed.WriteString(c.Text)
	fmt.Fprint(f.o.Stdout, c.Text)
}

// poll follows the task by reading it, when the websocket is unavailable.
func (f *follower) poll(ctx context.Context) error {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for !f.last.terminal() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if err := f.refresh(ctx); err != nil {
			return err
		}
	}
	return nil
}

// refresh reads the task and shows what changed.
func (f *follower) refresh(ctx context.Context) error {
	var t task
	if err := f.cl.do(ctx, "GET", fmt.Sprintf("/api/v1/tasks/%d", f.id), nil, &t); err != nil {
		return err
	}
	f.last = &t
	line := fmt.Sprintf("task %d %s%s", t.ID, t.Status, reasonSuffix(&t))
	if line == f.shown {
		return nil
	}
	f.shown = line
	switch {
	case !f.output && f.asJSON:
		return json.NewEncoder(f.o.Stdout).Encode(t)
	case !f.output:
		fmt.Fprintf(f.o.Stdout, "%s %s\n", time.Now().Format("15:04:05"), line)
	case !f.asJSON && !t.terminal():
		fmt.Fprintln(f.o.Stderr, line)
	}
	return nil
}

// result prints the ended task's output and turns its status into the
// command's outcome.
func (f *follower) result() error {
	t := f.last
	if f.output {
		if f.asJSON {
			if err := writeJSON(f.o.Stdout, t); err != nil {
				return err
			}
		} else if t.Status == "completed" {
			f.printOutput(t)
		}
	}
	switch t.Status {
	case "completed":
		return nil
	case "failed":
		return fail(ExitTaskFailed, "task %d failed after %d attempts: %s", t.ID, t.Attempts, t.Error)
	default:
		return fail(ExitTaskCancelled, "task %d was cancelled", t.ID)
	}
}

// printOutput completes what streamed: the stored output when nothing (or
// not all of it) streamed, an embedding as JSON.
func (f *follower) printOutput(t *task) {
	got := f.streamed.String()
	switch {
	case len(t.Embedding) > 0 && t.Output == "":
		raw, _ := json.Marshal(t.Embedding)
		fmt.Fprintln(f.o.Stdout, string(raw))
	case got == "":
		fmt.Fprintln(f.o.Stdout, t.Output)
	case got == t.Output:
		fmt.Fprintln(f.o.Stdout)
	default:
		// The stream began after the first chunks: print it whole.
		fmt.Fprintln(f.o.Stdout)
		fmt.Fprintln(f.o.Stderr, "(the live output missed its start; the whole output follows)")
		fmt.Fprintln(f.o.Stdout, t.Output)
	}
}
