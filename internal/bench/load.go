package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/events"
)

// collector records when this process saw each task's transitions on the
// scheduler's event bus (Redis pub/sub, as every api process sees them).
type collector struct {
	mu        sync.Mutex
	running   map[int]time.Time
	completed map[int]time.Time
	failed    atomic.Int64
	bad       atomic.Int64 // bus messages that did not decode
	waiters   []*waiter
	ps        *redis.PubSub
	done      chan struct{}
}

// waiter is a wait in progress: the ids not seen yet, and a channel closed
// when none is left. The collector strikes ids off as events arrive, so a
// wait costs no polling (the bench shares the CPU with what it measures).
type waiter struct {
	completed bool
	missing   map[int]struct{}
	done      chan struct{}
}

// seen records that id reached running or completed; c.mu is held.
func (c *collector) seen(id int, completed bool) {
	for _, w := range c.waiters {
		if w.completed != completed {
			continue
		}
		if _, ok := w.missing[id]; ok {
			delete(w.missing, id)
			if len(w.missing) == 0 {
				close(w.done)
			}
		}
	}
}

func newCollector(ctx context.Context, rdb redis.UniversalClient, prefix string) (*collector, error) {
	ps := rdb.Subscribe(ctx, events.Channel(prefix))
	if _, err := ps.Receive(ctx); err != nil {
		_ = ps.Close()
		return nil, fmt.Errorf("subscribe to the event bus: %w", err)
	}
	c := &collector{running: map[int]time.Time{}, completed: map[int]time.Time{}, ps: ps, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for m := range ps.Channel(redis.WithChannelSize(1 << 16)) {
			now := time.Now()
			c.mu.Lock()
			err := events.Decode([]byte(m.Payload), func(e events.TaskEvent) {
				switch e.To {
				case domain.StatusRunning:
					if _, ok := c.running[e.TaskID]; !ok {
						c.running[e.TaskID] = now
						c.seen(e.TaskID, false)
					}
				case domain.StatusCompleted:
					c.completed[e.TaskID] = now
					c.seen(e.TaskID, true)
				case domain.StatusFailed:
					c.failed.Add(1)
				}
			}, nil)
			c.mu.Unlock()
			if err != nil {
				c.bad.Add(1)
			}
		}
	}()
	return c, nil
}

func (c *collector) close() { _ = c.ps.Close(); <-c.done }

// wait blocks until every id has the wanted transition, or timeout.
func (c *collector) wait(ctx context.Context, ids []int, completed bool, timeout time.Duration) error {
	w := &waiter{completed: completed, missing: make(map[int]struct{}, len(ids)), done: make(chan struct{})}
	c.mu.Lock()
	have := c.running
	if completed {
		have = c.completed
	}
	for _, id := range ids {
		if _, ok := have[id]; !ok {
			w.missing[id] = struct{}{}
		}
	}
	if len(w.missing) == 0 {
		c.mu.Unlock()
		return nil
	}
	c.waiters = append(c.waiters, w)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.waiters = slices.DeleteFunc(c.waiters, func(x *waiter) bool { return x == w })
		c.mu.Unlock()
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		c.mu.Lock()
		missing := len(w.missing)
		c.mu.Unlock()
		return fmt.Errorf("%d of %d tasks not seen %s after %s (%d failed, %d bus messages undecodable)", missing, len(ids),
			map[bool]string{true: "completed", false: "running"}[completed], timeout, c.failed.Load(), c.bad.Load())
	}
}

func (c *collector) at(id int, completed bool) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if completed {
		t, ok := c.completed[id]
		return t, ok
	}
	t, ok := c.running[id]
	return t, ok
}

// client talks to the scheduler's HTTP API.
type client struct {
	base string
	http *http.Client
}

func newClient(base string, conns int) *client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = conns * 2
	tr.MaxIdleConnsPerHost = conns * 2
	return &client{base: base, http: &http.Client{Transport: tr, Timeout: 120 * time.Second}}
}

// do sends a JSON request and decodes the JSON answer into out.
func (c *client) do(ctx context.Context, method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: status %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(raw))
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decode %q: %w", method, path, raw, err)
		}
	}
	return resp.StatusCode, nil
}

// createModel registers a zero-latency simulator model.
func (c *client) createModel(ctx context.Context, name string, maxWorkers int, status string) (int, error) {
	var out struct {
		Data struct {
			ID int `json:"id"`
		} `json:"data"`
	}
	_, err := c.do(ctx, http.MethodPost, "/api/v1/models", map[string]any{
		"name": name, "type": "simulator", "max_workers": maxWorkers, "status": status,
		"config": map[string]any{"latency_ms": 0, "tokens_per_second": 0, "output_tokens": 16},
	}, &out)
	return out.Data.ID, err
}

func (c *client) setModelStatus(ctx context.Context, id int, status string) error {
	_, err := c.do(ctx, http.MethodPut, fmt.Sprintf("/api/v1/models/%d/status", id), map[string]any{"status": status}, nil)
	return err
}

// submitREST creates one task through the REST layer; a 429 (queue full)
// is retried after a short pause, as a well-behaved client would.
func (c *client) submitREST(ctx context.Context, modelID int, input string) (int, error) {
	return c.submitRESTAs(ctx, modelID, input, "")
}

// submitRESTAs submits as caller (a caller label; none when empty).
func (c *client) submitRESTAs(ctx context.Context, modelID int, input, caller string) (int, error) {
	body := map[string]any{"model_id": modelID, "type": "text-generation", "input": input, "priority": 2}
	if caller != "" {
		body["caller"] = caller
	}
	var out struct {
		Data struct {
			ID int `json:"id"`
		} `json:"data"`
	}
	for {
		code, err := c.do(ctx, http.MethodPost, "/api/v1/tasks", body, &out)
		if code == http.StatusTooManyRequests {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		return out.Data.ID, err
	}
}

// submitFunc creates one task and returns its id.
type submitFunc func(ctx context.Context, i int) (int, error)

// e2eResult is one end-to-end run.
type e2eResult struct {
	n       int
	elapsed time.Duration
	latency latencies
}

func (r e2eResult) rate() float64 { return throughput(r.n, r.elapsed) }

// runE2E submits n tasks from `submitters` goroutines and waits for every
// one to be seen completed on the bus. Throughput counts from the first
// submission to the last completion; latency is submit (request sent) to
// completed (event received).
func runE2E(ctx context.Context, col *collector, n, submitters int, submit submitFunc) (e2eResult, error) {
	var next atomic.Int64
	sent := make([]time.Time, n)
	ids := make([]int, n)
	errc := make(chan error, submitters)
	start := time.Now()
	var wg sync.WaitGroup
	for range submitters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				sent[i] = time.Now()
				id, err := submit(ctx, i)
				if err != nil {
					errc <- err
					return
				}
				ids[i] = id
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return e2eResult{}, err
	}
	if err := col.wait(ctx, ids, true, time.Duration(n)*20*time.Millisecond+60*time.Second); err != nil {
		return e2eResult{}, err
	}
	var last time.Time
	lat := make(latencies, 0, n)
	for i, id := range ids {
		t, _ := col.at(id, true)
		if t.After(last) {
			last = t
		}
		lat = append(lat, t.Sub(sent[i]))
	}
	return e2eResult{n: n, elapsed: last.Sub(start), latency: lat}, nil
}
