package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// batchIntake creates o.Batches x 1,000 tasks through GraphQL createTasks
// from two concurrent callers and reports tasks accepted per second.
func (p *phases) batchIntake(ctx context.Context) error {
	const size = 1000
	p.progress("%sbatch intake: %d x createTasks(%d inputs)", p.label, p.o.Batches, size)
	var next atomic.Int64
	var mu sync.Mutex
	var all []int
	var callLat latencies
	errc := make(chan error, 2)
	start := time.Now()
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(p.o.Batches) {
				t0 := time.Now()
				ids, err := p.gql.createTasks(ctx, p.modelID, size, "batch input")
				if err != nil {
					errc <- fmt.Errorf("batch intake: %w", err)
					return
				}
				mu.Lock()
				all = append(all, ids...)
				callLat = append(callLat, time.Since(t0))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errc)
	if err := <-errc; err != nil {
		return err
	}
	rate := throughput(len(all), elapsed)
	p.rep.row(p.label+"batch intake (createTasks x1000)", "tasks accepted/s", fmt.Sprintf("%.0f", rate))
	p.rep.row(p.label+"batch intake (createTasks x1000)", "per call", callLat.summary())
	p.rep.target("batch intake >= 10,000 tasks/s", fmt.Sprintf("%.0f tasks/s", rate), rate >= 10000)
	p.progress("%sbatch intake: waiting for %d tasks to complete", p.label, len(all))
	drain := time.Now()
	if err := p.col.wait(ctx, all, true, time.Duration(len(all))*20*time.Millisecond+60*time.Second); err != nil {
		return fmt.Errorf("batch drain: %w", err)
	}
	p.rep.row(p.label+"batch intake (createTasks x1000)", "drained (completed tasks/s)", fmt.Sprintf("%.0f", throughput(len(all), time.Since(drain))))
	p.total += len(all)
	return nil
}

// wsConn is one graphql-transport-ws connection.
type wsConn struct {
	c  *websocket.Conn
	wm sync.Mutex
}

func dialWS(ctx context.Context, base string) (*wsConn, error) {
	u := "ws" + strings.TrimPrefix(base, "http") + "/graphql"
	d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}, HandshakeTimeout: 30 * time.Second}
	c, resp, err := d.DialContext(ctx, u, http.Header{})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("websocket %s: %w (status %d)", u, err, resp.StatusCode)
		}
		return nil, fmt.Errorf("websocket %s: %w", u, err)
	}
	w := &wsConn{c: c}
	if err := w.send(map[string]any{"type": "connection_init", "payload": map[string]any{}}); err != nil {
		c.Close()
		return nil, err
	}
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		var m wsMsg
		if err := c.ReadJSON(&m); err != nil {
			c.Close()
			return nil, fmt.Errorf("websocket init: %w", err)
		}
		if m.Type == "connection_ack" {
			break
		}
	}
	_ = c.SetReadDeadline(time.Time{})
	return w, nil
}

type wsMsg struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

func (w *wsConn) send(v any) error {
	w.wm.Lock()
	defer w.wm.Unlock()
	return w.c.WriteJSON(v)
}

func (w *wsConn) subscribe(query string, vars map[string]any) error {
	return w.send(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": query, "variables": vars}})
}

// delivery is one event a subscriber received: the time it was produced
// on the server and the time it arrived.
type delivery struct {
	status string
	lag    time.Duration
}

// read delivers data payloads to f until the subscription completes,
// errors, or ctx ends.
func (w *wsConn) read(ctx context.Context, f func(data json.RawMessage, at time.Time) bool) error {
	go func() { <-ctx.Done(); w.c.Close() }()
	for {
		var m wsMsg
		if err := w.c.ReadJSON(&m); err != nil {
			return err
		}
		now := time.Now()
		switch m.Type {
		case "ping":
			_ = w.send(map[string]any{"type": "pong"})
		case "next":
			var p struct {
				Data   json.RawMessage `json:"data"`
				Errors []gqlError      `json:"errors"`
			}
			if err := json.Unmarshal(m.Payload, &p); err != nil {
				return err
			}
			if len(p.Errors) > 0 {
				return fmt.Errorf("subscription error: %s", p.Errors[0].Message)
			}
			if !f(p.Data, now) {
				return nil
			}
		case "error":
			return fmt.Errorf("subscription error: %s", m.Payload)
		case "complete":
			return nil
		}
	}
}

// fanOut opens K taskUpdated subscribers (one task each) and 10 taskEvents
// subscribers, lets the K tasks run, and measures delivery latency (server
// timestamp of the transition to arrival) and missed events.
func (p *phases) fanOut(ctx context.Context) error {
	k := p.o.Subscribers
	const firehoses = 10
	p.progress("%sfan-out: %d taskUpdated + %d taskEvents websocket subscribers", p.label, k, firehoses)
	modelID, err := p.c.createModel(ctx, "bench-fanout", p.cfg.Worker.MaxWorkers, "offline")
	if err != nil {
		return err
	}
	var ids []int
	for len(ids) < k {
		part, err := p.gql.createTasks(ctx, modelID, min(1000, k-len(ids)), "fan-out input")
		if err != nil {
			return fmt.Errorf("fan-out tasks: %w", err)
		}
		ids = append(ids, part...)
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var mu sync.Mutex
	var lags latencies
	perTaskDone := make([]atomic.Bool, k)
	var fireCompleted, fireRunning atomic.Int64
	var readErrs atomic.Int64
	var firstErr atomic.Value
	ready := make(chan struct{}, k)
	var wg sync.WaitGroup
	record := func(lag time.Duration) {
		mu.Lock()
		lags = append(lags, lag)
		mu.Unlock()
	}
	// Dial in parallel, a few at a time.
	sem := make(chan struct{}, 32)
	conns := make([]*wsConn, 0, k+firehoses)
	var connMu sync.Mutex
	dialErr := make(chan error, k+firehoses)
	for i := 0; i < k+firehoses; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			w, err := dialWS(fctx, p.s.url)
			if err != nil {
				dialErr <- err
				return
			}
			connMu.Lock()
			conns = append(conns, w)
			connMu.Unlock()
			if i < k {
				err = w.subscribe(`subscription($id: ID!) { taskUpdated(id: $id) { id status updatedAt } }`,
					map[string]any{"id": strconv.Itoa(ids[i])})
			} else {
				err = w.subscribe(`subscription($f: TaskEventFilter) { taskEvents(filter: $f) { taskID to at } }`,
					map[string]any{"f": map[string]any{"modelIDs": []string{strconv.Itoa(modelID)}}})
			}
			if err != nil {
				dialErr <- err
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				first := true
				rerr := w.read(fctx, func(data json.RawMessage, at time.Time) bool {
					if i < k {
						var d struct {
							T struct {
								Status    string    `json:"status"`
								UpdatedAt time.Time `json:"updatedAt"`
							} `json:"taskUpdated"`
						}
						if json.Unmarshal(data, &d) != nil {
							return false
						}
						if first {
							// The current state comes first; it is not a delivery.
							first = false
							ready <- struct{}{}
							if d.T.Status == "PENDING" {
								return true
							}
						}
						record(at.Sub(d.T.UpdatedAt))
						if d.T.Status == "COMPLETED" {
							perTaskDone[i].Store(true)
							return false
						}
						return true
					}
					var d struct {
						E struct {
							To string    `json:"to"`
							At time.Time `json:"at"`
						} `json:"taskEvents"`
					}
					if json.Unmarshal(data, &d) != nil {
						return false
					}
					record(at.Sub(d.E.At))
					switch d.E.To {
					case "COMPLETED":
						fireCompleted.Add(1)
					case "RUNNING":
						fireRunning.Add(1)
					}
					return true
				})
				if rerr != nil && fctx.Err() == nil {
					if i < k && perTaskDone[i].Load() {
						return
					}
					readErrs.Add(1)
					firstErr.CompareAndSwap(nil, rerr)
				}
			}()
		}(i)
	}
	// Every taskUpdated subscriber has its first message; give the
	// firehoses a moment longer (they have no initial message).
	timeout := time.After(120 * time.Second)
	for range k {
		select {
		case <-ready:
		case err := <-dialErr:
			return fmt.Errorf("fan-out subscribe: %w", err)
		case <-timeout:
			return fmt.Errorf("fan-out: subscribers not ready after 120s")
		}
	}
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	lags = nil
	mu.Unlock()

	p.progress("%sfan-out: model online, %d tasks run", p.label, k)
	if err := p.c.setModelStatus(ctx, modelID, "online"); err != nil {
		return err
	}
	if err := p.col.wait(ctx, ids, true, 120*time.Second); err != nil {
		return fmt.Errorf("fan-out tasks: %w", err)
	}
	var first, last time.Time
	for _, id := range ids {
		r, _ := p.col.at(id, false)
		c, _ := p.col.at(id, true)
		if first.IsZero() || r.Before(first) {
			first = r
		}
		if c.After(last) {
			last = c
		}
	}
	rate := throughput(k, last.Sub(first))
	// Allow delivery to finish, then count what never arrived.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		n := 0
		for i := range perTaskDone {
			if perTaskDone[i].Load() {
				n++
			}
		}
		if n == k && fireCompleted.Load() == int64(k*firehoses) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	connMu.Lock()
	for _, w := range conns {
		w.c.Close()
	}
	connMu.Unlock()
	wg.Wait()
	missedTask := 0
	for i := range perTaskDone {
		if !perTaskDone[i].Load() {
			missedTask++
		}
	}
	missedFire := int64(2*k*firehoses) - fireCompleted.Load() - fireRunning.Load()
	missed := int64(missedTask) + max(missedFire, 0)
	p.total += k
	name := fmt.Sprintf("%sfan-out (%d+%d subscribers)", p.label, k, firehoses)
	mu.Lock()
	lat := lags
	mu.Unlock()
	p.rep.row(name, "tasks/s while delivering", fmt.Sprintf("%.0f", rate))
	p.rep.row(name, "delivery latency", fmt.Sprintf("p50 %s  p99 %s  (%d deliveries)", ms(lat.pct(50)), ms(lat.pct(99)), len(lat)))
	p.rep.row(name, "missed events", fmt.Sprintf("%d (taskUpdated without COMPLETED: %d; firehose short by %d)", missed, missedTask, max(missedFire, 0)))
	if e := firstErr.Load(); e != nil {
		p.rep.row(name, "subscriber errors", fmt.Sprintf("%d, first: %v", readErrs.Load(), e))
	}
	p.rep.target("fan-out p99 <= 100 ms, no misses", fmt.Sprintf("p99 %s at %.0f tasks/s, %d missed, %d subscribers", ms(lat.pct(99)), rate, missed, k+firehoses),
		lat.pct(99) <= 100*time.Millisecond && missed == 0 && rate >= 500 && readErrs.Load() == 0)
	return nil
}
