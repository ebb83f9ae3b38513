package events

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/llmsched/llm-scheduler/internal/domain"
)

func encode(t *testing.T, kind byte, v any) outMsg {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return outMsg{kind: kind, raw: raw}
}

// TestFramesKeepOrderAcrossKinds: task events and output chunks packed in
// frames decode in the order they were queued, kinds interleaved.
func TestFramesKeepOrderAcrossKinds(t *testing.T) {
	var ms []outMsg
	var want []string
	for i := 1; i <= 5; i++ {
		ms = append(ms, encode(t, kindOutput, OutputChunk{TaskID: i, Seq: 1, Text: "x", Done: true}))
		ms = append(ms, encode(t, kindTask, TaskEvent{TaskID: i, To: domain.StatusCompleted}))
		want = append(want, fmt.Sprintf("output %d", i), fmt.Sprintf("task %d", i))
	}
	fs := frames(originPrefix("test"), ms)
	if len(fs) != 1 {
		t.Fatalf("%d small messages made %d frames, want 1", len(ms), len(fs))
	}
	var got []string
	err := Decode(fs[0],
		func(e TaskEvent) { got = append(got, fmt.Sprintf("task %d", e.TaskID)) },
		func(c OutputChunk) { got = append(got, fmt.Sprintf("output %d", c.TaskID)) })
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("decoded %v, want %v", got, want)
	}
}

// TestFramesSplitAtFrameMax: big messages spread over frames no larger
// than frameMax (one larger than that goes alone), and nothing is lost.
func TestFramesSplitAtFrameMax(t *testing.T) {
	big := strings.Repeat("a", frameMax/3)
	var ms []outMsg
	for i := 1; i <= 7; i++ {
		ms = append(ms, encode(t, kindOutput, OutputChunk{TaskID: i, Text: big}))
	}
	ms = append(ms, encode(t, kindOutput, OutputChunk{TaskID: 8, Text: strings.Repeat("b", frameMax+1)}))
	fs := frames(originPrefix("test"), ms)
	var ids []int
	for _, f := range fs {
		if len(f) > frameMax && !strings.Contains(string(f), "bbbb") {
			t.Fatalf("a frame of %d bytes, over frameMax %d", len(f), frameMax)
		}
		if err := Decode(f, nil, func(c OutputChunk) { ids = append(ids, c.TaskID) }); err != nil {
			t.Fatal(err)
		}
	}
	if len(fs) < 4 || fmt.Sprint(ids) != "[1 2 3 4 5 6 7 8]" {
		t.Fatalf("%d frames carrying %v, want at least 4 carrying 1..8 in order", len(fs), ids)
	}
}

// TestDecodeSkipsAndReports: a kind without a callback is skipped, and an
// entry that does not decode is reported after the others were delivered.
func TestDecodeSkipsAndReports(t *testing.T) {
	frame := []byte(`[{"task":{"task_id":1,"to":"running"}},{"output":{"task_id":1,"seq":1,"text":"hi"}},` +
		`{"task":{"task_id":"two"}},{"task":{"task_id":3,"to":"completed"}},{}]`)
	var tasks []int
	err := Decode(frame, func(e TaskEvent) { tasks = append(tasks, e.TaskID) }, nil)
	if err == nil || !strings.Contains(err.Error(), "decode task event") {
		t.Fatalf("Decode error = %v, want the bad task event reported", err)
	}
	if fmt.Sprint(tasks) != "[1 3]" {
		t.Fatalf("delivered tasks %v, want [1 3]", tasks)
	}
	if err := Decode([]byte(`{"task_id":1}`), nil, nil); err == nil {
		t.Fatal("a message that is not a frame decoded without error")
	}
}

// TestBusDeliversPublishOrder: a subscriber of a task's output and one of
// its transitions see, across both kinds, the order the worker published
// in (every chunk before the final transition): in another process,
// through Redis (miniredis), and in the publishing process itself.
func TestBusDeliversPublishOrder(t *testing.T) {
	t.Run("another process", func(t *testing.T) { testPublishOrder(t, false) })
	t.Run("same process", func(t *testing.T) { testPublishOrder(t, true) })
}

func testPublishOrder(t *testing.T, same bool) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub, pub := startBus(ctx, t, rdb), startBus(ctx, t, rdb)
	if same {
		pub = sub
	}
	bus := sub
	const tasks = 50
	outs := make([]*Subscription[OutputChunk], tasks+1)
	moves := make([]*Subscription[TaskEvent], tasks+1)
	for id := 1; id <= tasks; id++ {
		outs[id] = bus.SubscribeOutput(id, 64)
		moves[id] = bus.SubscribeTasks(TaskFilter{TaskID: id}, 64)
	}
	for id := 1; id <= tasks; id++ {
		for seq := 1; seq <= 3; seq++ {
			if err := pub.PublishOutput(ctx, OutputChunk{TaskID: id, Seq: seq, Text: "t", Done: seq == 3}); err != nil {
				t.Fatal(err)
			}
		}
		if err := pub.PublishTask(ctx, TaskEvent{TaskID: id, From: domain.StatusRunning, To: domain.StatusCompleted}); err != nil {
			t.Fatal(err)
		}
	}
	for id := 1; id <= tasks; id++ {
		select {
		case e := <-moves[id].C:
			if e.To != domain.StatusCompleted {
				t.Fatalf("task %d: event %+v", id, e)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("task %d: no transition delivered", id)
		}
		// The transition arrived: every chunk published before it is
		// already buffered.
		for seq := 1; seq <= 3; seq++ {
			select {
			case c := <-outs[id].C:
				if c.Seq != seq {
					t.Fatalf("task %d: chunk %d arrived as number %d", id, c.Seq, seq)
				}
			default:
				t.Fatalf("task %d: chunk %d not buffered when the final transition arrived", id, seq)
			}
		}
	}
}

func startBus(ctx context.Context, t *testing.T, rdb redis.UniversalClient) *Bus {
	t.Helper()
	bus := NewBus(rdb, "frametest", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := bus.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Stop(context.Background()) })
	select {
	case <-bus.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("bus did not subscribe")
	}
	return bus
}

func next[T any](t *testing.T, s *Subscription[T], what string) T {
	t.Helper()
	select {
	case v, ok := <-s.C:
		if !ok {
			t.Fatalf("%s: subscription closed (%v)", what, s.Err())
		}
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: nothing delivered", what)
	}
	panic("unreachable")
}

// TestBusOwnMessagesOnce: a process's own messages reach its subscribers
// when it publishes them, without Redis (delivered while Redis is down),
// and exactly once: the copy Redis echoes back is skipped, while another
// process's messages still arrive through Redis.
func TestBusOwnMessagesOnce(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1})
	defer rdb.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	self, other := startBus(ctx, t, rdb), startBus(ctx, t, rdb)
	mine := self.SubscribeTasks(TaskFilter{}, 16)
	chunks := self.SubscribeOutput(1, 16)
	seenByOther := other.SubscribeTasks(TaskFilter{}, 16)

	if err := self.PublishOutput(ctx, OutputChunk{TaskID: 1, Seq: 1, Text: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := self.PublishTasks(ctx, []TaskEvent{{TaskID: 1, To: domain.StatusRunning}, {TaskID: 1, To: domain.StatusCompleted}}); err != nil {
		t.Fatal(err)
	}
	if c := next(t, chunks, "own chunk"); c.Text != "a" {
		t.Fatalf("own chunk: %+v", c)
	}
	for _, want := range []domain.TaskStatus{domain.StatusRunning, domain.StatusCompleted} {
		if e := next(t, mine, "own event"); e.To != want {
			t.Fatalf("own event: got %s, want %s", e.To, want)
		}
	}
	// The other process got them through Redis.
	for _, want := range []domain.TaskStatus{domain.StatusRunning, domain.StatusCompleted} {
		if e := next(t, seenByOther, "other process"); e.To != want {
			t.Fatalf("other process: got %s, want %s", e.To, want)
		}
	}
	// A message of the other process, published after the echo of ours
	// reached Redis, arrives after that echo on our connection: once it is
	// here, the echo was read, and must not have been delivered again.
	if err := self.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := other.PublishTask(ctx, TaskEvent{TaskID: 2, To: domain.StatusPending}); err != nil {
		t.Fatal(err)
	}
	if e := next(t, mine, "other's event"); e.TaskID != 2 {
		t.Fatalf("our own event came back through Redis: %+v", e)
	}
	select {
	case c := <-chunks.C:
		t.Fatalf("our own chunk came back through Redis: %+v", c)
	default:
	}

	// Redis down: our own subscribers still hear us at once.
	mr.Close()
	if err := self.PublishTask(ctx, TaskEvent{TaskID: 3, To: domain.StatusCancelled}); err != nil {
		t.Fatal(err)
	}
	if e := next(t, mine, "own event, Redis down"); e.TaskID != 3 {
		t.Fatalf("own event with Redis down: %+v", e)
	}
}
