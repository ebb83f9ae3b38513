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
func (p *phases) batchIntake(ctx context.Context, f *figures) error {
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
	f.batch = rate
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

// fanout is the state of the fan-out phase: k taskUpdated subscribers (one
// task each) and some taskEvents firehoses on the phase's model.
type fanout struct {
	k, firehoses int
	ids          []int
	modelID      int

	mu          sync.Mutex
	lags        latencies
	perTaskDone []atomic.Bool
	fireDone    atomic.Int64 // firehose COMPLETED events
	fireRunning atomic.Int64 // firehose RUNNING events
	readErrs    atomic.Int64
	firstErr    atomic.Value
	ready       chan struct{}
	wg          sync.WaitGroup
	connMu      sync.Mutex
	conns       []*wsConn
	dialErr     chan error
}

func (fo *fanout) record(lag time.Duration) {
	fo.mu.Lock()
	fo.lags = append(fo.lags, lag)
	fo.mu.Unlock()
}

// fanOut opens K taskUpdated subscribers (one task each) and 10 taskEvents
// subscribers, lets the K tasks run, and measures delivery latency (server
// timestamp of the transition to arrival) and missed events.
func (p *phases) fanOut(ctx context.Context, f *figures) error {
	fo := &fanout{k: p.o.Subscribers, firehoses: 10}
	p.progress("%sfan-out: %d taskUpdated + %d taskEvents websocket subscribers", p.label, fo.k, fo.firehoses)
	if err := p.fanOutTasks(ctx, fo); err != nil {
		return err
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fo.subscribeAll(fctx, p.s.url)
	if err := fo.waitReady(); err != nil {
		return err
	}
	p.progress("%sfan-out: model online, %d tasks run", p.label, fo.k)
	if err := p.c.setModelStatus(ctx, fo.modelID, "online"); err != nil {
		return err
	}
	if err := p.col.wait(ctx, fo.ids, true, 120*time.Second); err != nil {
		return fmt.Errorf("fan-out tasks: %w", err)
	}
	rate := p.fanOutRate(fo.ids)
	fo.waitDelivered(10 * time.Second)
	cancel()
	fo.closeAll()
	p.total += fo.k
	p.fanOutReport(fo, rate, f)
	return nil
}

// fanOutTasks creates the phase's model, offline, and its k tasks.
func (p *phases) fanOutTasks(ctx context.Context, fo *fanout) error {
	modelID, err := p.c.createModel(ctx, "bench-fanout", p.cfg.Worker.MaxWorkers, "offline")
	if err != nil {
		return err
	}
	fo.modelID = modelID
	for len(fo.ids) < fo.k {
		part, err := p.gql.createTasks(ctx, modelID, min(1000, fo.k-len(fo.ids)), "fan-out input")
		if err != nil {
			return fmt.Errorf("fan-out tasks: %w", err)
		}
		fo.ids = append(fo.ids, part...)
	}
	return nil
}

// subscribeAll dials every subscriber, a few at a time, and starts its
// reader.
func (fo *fanout) subscribeAll(ctx context.Context, url string) {
	n := fo.k + fo.firehoses
	fo.perTaskDone = make([]atomic.Bool, fo.k)
	fo.ready = make(chan struct{}, fo.k)
	fo.dialErr = make(chan error, n)
	sem := make(chan struct{}, 32)
	for i := range n {
		sem <- struct{}{}
		fo.wg.Add(1)
		go func() {
			defer fo.wg.Done()
			defer func() { <-sem }()
			if err := fo.subscribe(ctx, url, i); err != nil {
				fo.dialErr <- err
			}
		}()
	}
}

// subscribe opens subscriber i (a taskUpdated one below k, else a
// firehose) and starts reading it.
func (fo *fanout) subscribe(ctx context.Context, url string, i int) error {
	w, err := dialWS(ctx, url)
	if err != nil {
		return err
	}
	fo.connMu.Lock()
	fo.conns = append(fo.conns, w)
	fo.connMu.Unlock()
	if i < fo.k {
		err = w.subscribe(`subscription($id: ID!) { taskUpdated(id: $id) { id status updatedAt } }`,
			map[string]any{"id": strconv.Itoa(fo.ids[i])})
	} else {
		err = w.subscribe(`subscription($f: TaskEventFilter) { taskEvents(filter: $f) { taskID to at } }`,
			map[string]any{"f": map[string]any{"modelIDs": []string{strconv.Itoa(fo.modelID)}}})
	}
	if err != nil {
		return err
	}
	fo.wg.Add(1)
	go func() {
		defer fo.wg.Done()
		read := fo.firehose
		if i < fo.k {
			read = fo.taskUpdated(i)
		}
		rerr := w.read(ctx, read)
		if rerr != nil && ctx.Err() == nil && (i >= fo.k || !fo.perTaskDone[i].Load()) {
			fo.readErrs.Add(1)
			fo.firstErr.CompareAndSwap(nil, rerr)
		}
	}()
	return nil
}

// taskUpdated reads subscriber i's messages until its task completes.
func (fo *fanout) taskUpdated(i int) func(data json.RawMessage, at time.Time) bool {
	first := true
	return func(data json.RawMessage, at time.Time) bool {
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
			fo.ready <- struct{}{}
			if d.T.Status == "PENDING" {
				return true
			}
		}
		fo.record(at.Sub(d.T.UpdatedAt))
		if d.T.Status == "COMPLETED" {
			fo.perTaskDone[i].Store(true)
			return false
		}
		return true
	}
}

// firehose reads a taskEvents subscriber's messages.
func (fo *fanout) firehose(data json.RawMessage, at time.Time) bool {
	var d struct {
		E struct {
			To string    `json:"to"`
			At time.Time `json:"at"`
		} `json:"taskEvents"`
	}
	if json.Unmarshal(data, &d) != nil {
		return false
	}
	fo.record(at.Sub(d.E.At))
	switch d.E.To {
	case "COMPLETED":
		fo.fireDone.Add(1)
	case "RUNNING":
		fo.fireRunning.Add(1)
	}
	return true
}

// waitReady waits until every taskUpdated subscriber has its first message,
// gives the firehoses a moment longer (they have no initial message), and
// forgets what was recorded so far.
func (fo *fanout) waitReady() error {
	timeout := time.After(120 * time.Second)
	for range fo.k {
		select {
		case <-fo.ready:
		case err := <-fo.dialErr:
			return fmt.Errorf("fan-out subscribe: %w", err)
		case <-timeout:
			return fmt.Errorf("fan-out: subscribers not ready after 120s")
		}
	}
	time.Sleep(500 * time.Millisecond)
	fo.mu.Lock()
	fo.lags = nil
	fo.mu.Unlock()
	return nil
}

// fanOutRate is the tasks' rate from the first start to the last completion.
func (p *phases) fanOutRate(ids []int) float64 {
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
	return throughput(len(ids), last.Sub(first))
}

// waitDelivered gives delivery up to within to finish.
func (fo *fanout) waitDelivered(within time.Duration) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if fo.missedTasks() == 0 && fo.fireDone.Load() == int64(fo.k*fo.firehoses) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (fo *fanout) missedTasks() int {
	n := 0
	for i := range fo.perTaskDone {
		if !fo.perTaskDone[i].Load() {
			n++
		}
	}
	return n
}

// closeAll closes every connection and waits for the readers.
func (fo *fanout) closeAll() {
	fo.connMu.Lock()
	for _, w := range fo.conns {
		w.c.Close()
	}
	fo.connMu.Unlock()
	fo.wg.Wait()
}

// fanOutReport adds the phase's rows and figures.
func (p *phases) fanOutReport(fo *fanout, rate float64, f *figures) {
	missedTask := fo.missedTasks()
	missedFire := max(int64(2*fo.k*fo.firehoses)-fo.fireDone.Load()-fo.fireRunning.Load(), 0)
	missed := int64(missedTask) + missedFire
	name := fmt.Sprintf("%sfan-out (%d+%d subscribers)", p.label, fo.k, fo.firehoses)
	fo.mu.Lock()
	lat := fo.lags
	fo.mu.Unlock()
	p.rep.row(name, "tasks/s while delivering", fmt.Sprintf("%.0f", rate))
	p.rep.row(name, "delivery latency", fmt.Sprintf("p50 %s  p99 %s  (%d deliveries)", ms(lat.pct(50)), ms(lat.pct(99)), len(lat)))
	p.rep.row(name, "missed events", fmt.Sprintf("%d (taskUpdated without COMPLETED: %d; firehose short by %d)", missed, missedTask, missedFire))
	if e := fo.firstErr.Load(); e != nil {
		p.rep.row(name, "subscriber errors", fmt.Sprintf("%d, first: %v", fo.readErrs.Load(), e))
	}
	f.fanoutRun = true
	f.fanoutP99 = lat.pct(99)
	f.fanoutRate = rate
	// A subscriber that failed to read counts as a miss.
	f.fanoutMissed = missed + fo.readErrs.Load()
}
