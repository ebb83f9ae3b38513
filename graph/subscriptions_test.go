package graph_test

import (
	"encoding/json"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/llmsched/llm-scheduler/internal/app"
	"github.com/llmsched/llm-scheduler/internal/apptest"
)

const taskUpdatedOp = `subscription($id: ID!) { taskUpdated(id: $id) { id status attempts output } }`

// TestTaskUpdated: the current task first, then every transition in order,
// then completion, on both websocket protocols.
func TestTaskUpdated(t *testing.T) {
	env := apptest.New(t, nil)
	for _, proto := range []string{protoTransport, protoLegacy} {
		t.Run(proto, func(t *testing.T) {
			m := simulator(t, env, "sim-"+proto, "OFFLINE", map[string]any{"latency_ms": 150, "tokens_per_second": 0, "output_tokens": 4})
			task := createTask(t, env, "", map[string]any{"modelID": m.ID, "type": "TEXT_GENERATION", "input": "hi"})
			ws := mustDialWS(t, env, proto, nil)
			ws.subscribe("1", taskUpdatedOp, map[string]any{"id": task.ID})
			var got []string
			var last taskView
			var first struct{ TaskUpdated taskView }
			ws.nextData(10*time.Second, &first)
			got = append(got, first.TaskUpdated.Status)
			mustData(t, env, "", setStatusOp, map[string]any{"id": m.ID, "s": "ONLINE"}, nil)
			for {
				kind, r := ws.next(30 * time.Second)
				if kind == "complete" {
					break
				}
				if kind != "next" || len(r.Errors) > 0 {
					t.Fatalf("want data, got %s %+v", kind, r.Errors)
				}
				var d struct{ TaskUpdated taskView }
				if err := json.Unmarshal(r.Data, &d); err != nil {
					t.Fatal(err)
				}
				got = append(got, d.TaskUpdated.Status)
				last = d.TaskUpdated
			}
			if want := "PENDING RUNNING COMPLETED"; strings.Join(got, " ") != want {
				t.Fatalf("statuses %v, want %s", got, want)
			}
			if last.Output == "" {
				t.Fatalf("completed task without output: %+v", last)
			}
		})
	}
}

// TestTaskUpdatedTerminal: a finished task yields itself once, then completes;
// an unknown one fails with NOT_FOUND.
func TestTaskUpdatedTerminal(t *testing.T) {
	env := apptest.New(t, nil)
	m := simulator(t, env, "sim", "OFFLINE", nil)
	task := createTask(t, env, "", map[string]any{"modelID": m.ID, "type": "TEXT_GENERATION", "input": "hi"})
	mustData(t, env, "", `mutation($id: ID!) { cancelTask(id: $id) { id } }`, map[string]any{"id": task.ID}, nil)
	ws := mustDialWS(t, env, protoTransport, nil)
	ws.subscribe("a", taskUpdatedOp, map[string]any{"id": task.ID})
	var d struct{ TaskUpdated taskView }
	ws.nextData(10*time.Second, &d)
	if d.TaskUpdated.Status != "CANCELLED" {
		t.Fatalf("got %+v", d.TaskUpdated)
	}
	if kind, _ := ws.next(10 * time.Second); kind != "complete" {
		t.Fatalf("want complete, got %s", kind)
	}
	ws.subscribe("b", taskUpdatedOp, map[string]any{"id": 999999})
	kind, r := ws.next(10 * time.Second)
	if kind == "complete" || len(r.Errors) == 0 || r.Errors[0].code() != "NOT_FOUND" {
		t.Fatalf("unknown task: %s %+v, want NOT_FOUND", kind, r.Errors)
	}
}

// TestSubscriptionOverHTTP: subscriptions need a websocket.
func TestSubscriptionOverHTTP(t *testing.T) {
	env := apptest.New(t, nil)
	wantCode(t, env, "", `subscription { taskEvents { taskID } }`, nil, "BAD_USER_INPUT")
}

// TestTaskOutput: the simulator's streamed chunks arrive in order and their
// concatenation is the stored output.
func TestTaskOutput(t *testing.T) {
	env := apptest.New(t, nil)
	m := simulator(t, env, "streamer", "OFFLINE", map[string]any{"latency_ms": 20, "tokens_per_second": 200, "output_tokens": 40})
	task := createTask(t, env, "", map[string]any{"modelID": m.ID, "type": "TEXT_GENERATION", "input": "stream please"})
	ws := mustDialWS(t, env, protoTransport, nil)
	ws.subscribe("o", `subscription($id: ID!) { taskOutput(id: $id) { taskID attempt seq text done } }`, map[string]any{"id": task.ID})
	// The subscription is live once the server handled the subscribe
	// message; a query on the same socket is answered after it.
	ws.subscribe("q", `{ systemHealth { status } }`, nil)
	for done := false; !done; {
		if kind, _ := ws.next(10 * time.Second); kind == "complete" {
			done = true
		}
	}
	mustData(t, env, "", setStatusOp, map[string]any{"id": m.ID, "s": "ONLINE"}, nil)
	var b strings.Builder
	seq, chunks, sawDone := 0, 0, false
	for {
		kind, r := ws.next(30 * time.Second)
		if kind == "complete" {
			break
		}
		if kind != "next" || len(r.Errors) > 0 {
			t.Fatalf("want chunk, got %s %+v", kind, r.Errors)
		}
		var c struct {
			TaskOutput struct {
				TaskID  gid
				Attempt int
				Seq     int
				Text    string
				Done    bool
			}
		}
		if err := json.Unmarshal(r.Data, &c); err != nil {
			t.Fatal(err)
		}
		o := c.TaskOutput
		if o.TaskID != task.ID || o.Attempt != 1 || o.Seq != seq+1 {
			t.Fatalf("chunk %+v after seq %d: want task %v attempt 1 seq %d", o, seq, task.ID, seq+1)
		}
		seq = o.Seq
		chunks++
		sawDone = sawDone || o.Done
		b.WriteString(o.Text)
	}
	stored := env.WaitTask(task.ID.N, "completed", 10*time.Second).Output
	if chunks < 2 || !sawDone {
		t.Fatalf("got %d chunks (done %v), want a stream of several ending with done", chunks, sawDone)
	}
	if b.String() != stored {
		t.Fatalf("concatenated chunks %q != stored output %q", b.String(), stored)
	}
}

// TestTaskEventsFilter: only transitions of matching tasks arrive.
func TestTaskEventsFilter(t *testing.T) {
	env := apptest.New(t, nil)
	fast := map[string]any{"latency_ms": 0, "output_tokens": 2}
	a := simulator(t, env, "a", "ONLINE", fast)
	b := simulator(t, env, "b", "ONLINE", fast)
	ws := mustDialWS(t, env, protoTransport, nil)
	ws.subscribe("e", `subscription($f: TaskEventFilter) { taskEvents(filter: $f) { taskID modelID from to priority task { id } } }`,
		map[string]any{"f": map[string]any{"modelIDs": []gid{a.ID}, "statuses": []string{"PENDING", "COMPLETED"}, "priorities": []int{3}}})
	ws.subscribe("q", `{ systemHealth { status } }`, nil)
	for done := false; !done; {
		if kind, _ := ws.next(10 * time.Second); kind == "complete" {
			done = true
		}
	}
	createTask(t, env, "", map[string]any{"modelID": b.ID, "type": "TEXT_GENERATION", "input": "other model", "priority": 3})
	createTask(t, env, "", map[string]any{"modelID": a.ID, "type": "TEXT_GENERATION", "input": "low", "priority": 1})
	want := createTask(t, env, "", map[string]any{"modelID": a.ID, "type": "TEXT_GENERATION", "input": "match", "priority": 3})
	var got []string
	for len(got) < 2 {
		var e struct {
			TaskEvents struct {
				TaskID gid
				From   *string
				To     string
				Task   struct{ ID gid }
			}
		}
		ws.nextData(30*time.Second, &e)
		if e.TaskEvents.TaskID != want.ID || e.TaskEvents.Task.ID != want.ID {
			t.Fatalf("event of task %v passed the filter, want only %v", e.TaskEvents.TaskID, want.ID)
		}
		from := "null"
		if e.TaskEvents.From != nil {
			from = *e.TaskEvents.From
		}
		got = append(got, from+">"+e.TaskEvents.To)
	}
	if strings.Join(got, " ") != "null>PENDING RUNNING>COMPLETED" {
		t.Fatalf("events %v", got)
	}
}

// TestDashboardStatsUpdated: stats now, then again after a change.
func TestDashboardStatsUpdated(t *testing.T) {
	env := apptest.New(t, nil)
	m := simulator(t, env, "sim", "OFFLINE", nil)
	ws := mustDialWS(t, env, protoTransport, nil)
	ws.subscribe("s", `subscription { dashboardStatsUpdated { totalTasks pending } }`, nil)
	type stats struct {
		DashboardStatsUpdated struct{ TotalTasks, Pending int }
	}
	var s stats
	ws.nextData(10*time.Second, &s)
	before := s.DashboardStatsUpdated.TotalTasks
	for range 3 {
		createTask(t, env, "", map[string]any{"modelID": m.ID, "type": "TEXT_GENERATION", "input": "x"})
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.DashboardStatsUpdated.TotalTasks != before+3 {
		if time.Now().After(deadline) {
			t.Fatalf("stats never showed the 3 new tasks: %+v", s)
		}
		ws.nextData(10*time.Second, &s)
	}
	if s.DashboardStatsUpdated.Pending != 3 {
		t.Fatalf("pending %d, want 3", s.DashboardStatsUpdated.Pending)
	}
}

// TestCrossProcess: a subscriber on an api-only process sees every
// transition a separate worker-only process makes, on shared storage.
func TestCrossProcess(t *testing.T) {
	sh := apptest.NewShared(t, nil)
	api := sh.Start(t, app.RoleAPI)
	worker := sh.Start(t, app.RoleWorker)
	if worker.URL != "" || api.App.Worker != nil {
		t.Fatalf("roles are not separate: worker URL %q, api worker %v", worker.URL, api.App.Worker)
	}
	m := simulator(t, api, "remote", "ONLINE", map[string]any{"latency_ms": 50, "output_tokens": 3})
	ws := mustDialWS(t, api, protoTransport, nil)
	ws.subscribe("e", `subscription($f: TaskEventFilter) { taskEvents(filter: $f) { taskID from to } }`, map[string]any{"f": map[string]any{"modelIDs": []gid{m.ID}}})
	ws.subscribe("q", `{ systemHealth { status } }`, nil)
	for done := false; !done; {
		if kind, _ := ws.next(10 * time.Second); kind == "complete" {
			done = true
		}
	}
	task := createTask(t, api, "", map[string]any{"modelID": m.ID, "type": "TEXT_GENERATION", "input": "far away"})
	var got []string
	for len(got) < 3 {
		var e struct {
			TaskEvents struct {
				TaskID gid
				To     string
			}
		}
		ws.nextData(30*time.Second, &e)
		if e.TaskEvents.TaskID == task.ID {
			got = append(got, e.TaskEvents.To)
		}
	}
	if strings.Join(got, " ") != "PENDING RUNNING COMPLETED" {
		t.Fatalf("api process saw %v, want PENDING RUNNING COMPLETED", got)
	}
	// And taskUpdated on the api process follows the worker's changes too.
	t2 := createTask(t, api, "", map[string]any{"modelID": m.ID, "type": "TEXT_GENERATION", "input": "again"})
	ws.subscribe("u", taskUpdatedOp, map[string]any{"id": t2.ID})
	for {
		kind, r := ws.next(30 * time.Second)
		if kind == "complete" {
			break
		}
		if strings.Contains(string(r.Data), "taskEvents") {
			continue
		}
		if kind != "next" || len(r.Errors) > 0 {
			t.Fatalf("taskUpdated: %s %+v", kind, r.Errors)
		}
	}
	if tk := api.Task(t2.ID.N); tk.Status != "completed" {
		t.Fatalf("task %v is %s after taskUpdated completed", t2.ID, tk.Status)
	}
}

// TestManySubscribers: 1,000 websocket subscribers to taskEvents, one of
// them stalled (it never reads). The others receive every event, and after
// everyone disconnects no goroutine is left behind.
func TestManySubscribers(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 websockets")
	}
	env := apptest.New(t, nil)
	// One task at a time, 30ms each: events come at a pace every live
	// client keeps up with, while the stalled one falls behind for good.
	m := createModel(t, env, "", map[string]any{"name": "load", "type": "SIMULATOR", "status": "OFFLINE", "maxWorkers": 1,
		"config": map[string]any{"latency_ms": 30, "output_tokens": 2}})
	runtime.GC()
	baseline := runtime.NumGoroutine()

	vars := map[string]any{"f": map[string]any{"modelIDs": []gid{m.ID}}}
	stalled := stalledSubscriber(t, env, vars)
	defer stalled.Close()
	const n = 999
	clients := connectSubscribers(t, env, n, vars)

	// 100 tasks, each pending -> running -> completed: 300 events, more
	// than a subscription's buffer (events.DefaultBuffer).
	const tasks = 100
	big := strings.Repeat("x", 64<<10)
	in := make([]map[string]any, tasks)
	for i := range in {
		in[i] = map[string]any{"modelID": m.ID, "type": "TEXT_GENERATION", "input": fmt.Sprint(big, i)}
	}
	mustData(t, env, "", `mutation($in: [CreateTaskInput!]!) { createTasks(inputs: $in) { id } }`, map[string]any{"in": in}, nil)
	mustData(t, env, "", setStatusOp, map[string]any{"id": m.ID, "s": "ONLINE"}, nil)

	var rwg sync.WaitGroup
	failures := make(chan string, n)
	for i, c := range clients {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			if f := readTaskEvents(c, i, tasks); f != "" {
				failures <- f
			}
		}()
	}
	rwg.Wait()
	close(failures)
	for f := range failures {
		t.Fatal(f)
	}
	// The stalled subscriber was dropped (overflow, or the write deadline).
	if got := env.App.Bus.Subscribers(); got != n {
		t.Fatalf("%d bus subscribers after the run, want %d: the stalled one should have been dropped", got, n)
	}

	// Disconnect everyone; the server releases every goroutine and bus
	// subscription it held for them.
	for _, c := range clients {
		c.c.Close()
	}
	stalled.Close()
	waitReleased(t, env, baseline)
}

const manySub = `subscription($f: TaskEventFilter) { taskEvents(filter: $f) { taskID from to attempt } }`

// stalledSubscriber subscribes to taskEvents and never reads: a tiny
// receive buffer, large messages (it selects each task's 64 KiB input) and
// no reads, so the server's writes to it block and its event buffer
// overflows.
func stalledSubscriber(t *testing.T, env *apptest.Env, vars map[string]any) *websocket.Conn {
	t.Helper()
	stalledDialer := websocket.Dialer{
		Subprotocols: []string{protoTransport},
		NetDial: func(network, addr string) (net.Conn, error) {
			d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
				var serr error
				if err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1024) }); err != nil {
					return err
				}
				return serr
			}}
			return d.Dial(network, addr)
		},
	}
	stalled, _, err := stalledDialer.Dial(wsURL(env), nil)
	if err != nil {
		t.Fatal(err)
	}
	const bigSub = `subscription($f: TaskEventFilter) { taskEvents(filter: $f) { taskID to task { input } } }`
	for _, msg := range []map[string]any{
		{"type": "connection_init", "payload": map[string]any{}},
		{"id": "s", "type": "subscribe", "payload": map[string]any{"query": bigSub, "variables": vars}},
	} {
		if err := stalled.WriteJSON(msg); err != nil {
			stalled.Close()
			t.Fatal(err)
		}
	}
	return stalled
}

// connectSubscribers connects n clients, 100 at a time, each subscribed to
// taskEvents, and waits until every subscription (and the stalled one) is
// registered on the bus.
func connectSubscribers(t *testing.T, env *apptest.Env, n int, vars map[string]any) []*wsClient {
	t.Helper()
	clients := make([]*wsClient, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dialWS(t, env, protoTransport, nil)
			if err != nil {
				errs <- err
				return
			}
			clients[i] = c
			if err := c.c.WriteJSON(map[string]any{"id": "s", "type": "subscribe", "payload": map[string]any{"query": manySub, "variables": vars}}); err != nil {
				errs <- err
			}
		}()
		if i%100 == 99 {
			wg.Wait()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("connect: %v", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for env.App.Bus.Subscribers() < n+1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d bus subscribers, want %d", env.App.Bus.Subscribers(), n+1)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return clients
}

// readTaskEvents reads client i's events until it has three per task and
// checks it got each of pending, running and completed once per task. It
// returns what went wrong, "" if nothing.
func readTaskEvents(c *wsClient, i, tasks int) string {
	counts := map[string]int{}
	for got := 0; got < tasks*3; {
		var msg wsMsg
		if err := c.c.SetReadDeadline(time.Now().Add(90 * time.Second)); err != nil {
			return err.Error()
		}
		if err := c.c.ReadJSON(&msg); err != nil {
			return fmt.Sprintf("client %d after %d events: %v", i, got, err)
		}
		switch msg.Type {
		case "ping":
			_ = c.c.WriteJSON(map[string]any{"type": "pong"})
		case "next":
			var r struct {
				Data struct{ TaskEvents struct{ To string } }
			}
			if err := json.Unmarshal(msg.Payload, &r); err != nil {
				return err.Error()
			}
			counts[r.Data.TaskEvents.To]++
			got++
		default:
			return fmt.Sprintf("client %d: unexpected %s %s", i, msg.Type, msg.Payload)
		}
	}
	if counts["PENDING"] != tasks || counts["RUNNING"] != tasks || counts["COMPLETED"] != tasks {
		return fmt.Sprintf("client %d: events by status %v, want %d of each", i, counts, tasks)
	}
	return ""
}

// waitReleased waits until the bus has no subscriber left and the
// goroutines are back to about baseline.
func waitReleased(t *testing.T, env *apptest.Env, baseline int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		runtime.GC()
		subs, g := env.App.Bus.Subscribers(), runtime.NumGoroutine()
		if subs == 0 && g <= baseline+10 {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("after disconnect: %d bus subscribers, %d goroutines (baseline %d)\n%s", subs, g, baseline, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestShutdownClosesWebsockets: stopping the process closes open websockets
// with 1001 (going away).
func TestShutdownClosesWebsockets(t *testing.T) {
	env := apptest.New(t, nil)
	ws := mustDialWS(t, env, protoTransport, nil)
	ws.subscribe("s", `subscription { dashboardStatsUpdated { totalTasks } }`, nil)
	var s struct{ DashboardStatsUpdated struct{ TotalTasks int } }
	ws.nextData(10*time.Second, &s)
	done := make(chan struct{})
	go func() { env.Stop(); close(done) }()
	for {
		_, err := ws.read(20 * time.Second)
		if err == nil {
			continue
		}
		if !websocket.IsCloseError(err, websocket.CloseGoingAway, websocket.CloseNormalClosure) {
			t.Fatalf("want a clean close, got %v", err)
		}
		break
	}
	<-done
}
