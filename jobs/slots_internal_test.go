package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/llmsched/llm-scheduler/internal/broker"
)

func TestSlotsGrantNothingWhileTheEpochIsMissing(t *testing.T) {
	tests := []struct {
		name     string
		inScript bool
	}{
		{name: "epoch read before the script (Redis Cluster)", inScript: false},
		{name: "epoch checked by the script", inScript: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestSlots(t)
			s.epoch, s.epochInScript, s.wake = "test:epoch", tc.inScript, "test:wake:armed"
			ctx := context.Background()

			// Redis lost its data: the task waits parked, however many
			// slots are free.
			held, granted, err := s.Admit(ctx, 1, 2, []admitItem{{ID: 7, Priority: 2}})
			if err != nil {
				t.Fatal(err)
			}
			if len(held) != 0 || len(granted) != 0 {
				t.Fatalf("without the epoch: held %v, granted %v; want nothing", held, granted)
			}
			if st, err := s.StateOf(ctx, 1, 7); err != nil || !st.Parked || st.Leased {
				t.Fatalf("without the epoch: state %+v (err %v), want parked without a lease", st, err)
			}
			// A release hands nothing on either.
			if granted, err := s.Release(ctx, 1, 2, 99, 0); err != nil || len(granted) != 0 {
				t.Fatalf("release without the epoch granted %v (err %v); want nothing", granted, err)
			}

			// Once the reconciler writes the epoch, slots are handed out.
			if err := s.rdb.Set(ctx, s.epoch, 1, 0).Err(); err != nil {
				t.Fatal(err)
			}
			before := s.now()
			granted, err = s.Pump(ctx, 1, 2)
			if err != nil {
				t.Fatal(err)
			}
			if len(granted) != 1 || granted[0].TaskID != 7 || granted[0].Priority != 2 || granted[0].At < before {
				t.Fatalf("with the epoch: granted %+v, want task 7 at priority 2, leased at %d or later", granted, before)
			}
			// Admit renews a held lease and says when.
			held, _, err = s.Admit(ctx, 1, 2, []admitItem{{ID: 7, Priority: 2}})
			if err != nil || len(held) != 1 || held[0].TaskID != 7 || held[0].At < granted[0].At {
				t.Fatalf("admit of a leased task: held %+v (err %v), want task 7 renewed", held, err)
			}
		})
	}
}

// TestSlotsModelMarkers: on Redis Cluster the slot scripts check the
// model's epoch marker, in the model's hash slot. A model never marked is
// marked at its first call once the epoch exists; a model whose marker is
// gone (its shard lost its keys, the running task's lease with them) gets
// no slot, even with the epoch intact, until the reconciler marks it
// again. Breakage caught: the scripts not checking the marker (task 8 ran
// beside task 7 after the shard loss); markScript marking a model that had
// been marked before (same).
func TestSlotsModelMarkers(t *testing.T) {
	s := newTestSlots(t)
	s.epoch, s.modelMarks, s.wakePerModel, s.wake = "test:epoch", true, true, "test:wake:armed"
	ctx := context.Background()

	// No epoch yet: nothing is handed out, and the model stays unmarked.
	if _, granted, err := s.Admit(ctx, 1, 1, []admitItem{{ID: 7, Priority: 2}}); err != nil || len(granted) != 0 {
		t.Fatalf("without the epoch: granted %v (err %v); want nothing", granted, err)
	}
	if n := s.rdb.Exists(ctx, s.markKeyOf(1)).Val(); n != 0 {
		t.Fatalf("without the epoch the model was marked")
	}
	if err := s.rdb.Set(ctx, s.epoch, 1, 0).Err(); err != nil {
		t.Fatal(err)
	}
	// A fresh model is marked by its first call and served at once.
	granted, err := s.Pump(ctx, 1, 1)
	if err != nil || len(granted) != 1 || granted[0].TaskID != 7 {
		t.Fatalf("fresh model: granted %+v (err %v), want task 7", granted, err)
	}
	if n := s.rdb.Exists(ctx, s.markKeyOf(1)).Val(); n != 1 {
		t.Fatalf("fresh model not marked")
	}
	// The model's shard loses its keys (marker and leases), the epoch's
	// does not: task 8 waits, though the model's one slot looks free.
	for _, k := range append(s.keys(1), s.markKeyOf(1)) {
		if err := s.rdb.Del(ctx, k).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if _, granted, err := s.Admit(ctx, 1, 1, []admitItem{{ID: 8, Priority: 2}}); err != nil || len(granted) != 0 {
		t.Fatalf("after the model's keys were lost: granted %v (err %v); want nothing", granted, err)
	}
	if granted, err := s.Release(ctx, 1, 1, 99, 0); err != nil || len(granted) != 0 {
		t.Fatalf("release after the model's keys were lost granted %v (err %v); want nothing", granted, err)
	}
	fresh, lost, err := s.unmarked(ctx, []int{1, 2})
	if err != nil || !slices.Equal(fresh, []int{2}) || !slices.Equal(lost, []int{1}) {
		t.Fatalf("unmarked = fresh %v, lost %v (err %v); want fresh [2], lost [1]", fresh, lost, err)
	}
	// Task 7's heartbeat restores its lease, the reconciler marks the
	// model again: the slot is 7's, task 8 still waits.
	if _, err := s.Heartbeat(ctx, 1, 7); err != nil {
		t.Fatal(err)
	}
	if err := s.remark(ctx, []int{1}); err != nil {
		t.Fatal(err)
	}
	if granted, err := s.Pump(ctx, 1, 1); err != nil || len(granted) != 0 {
		t.Fatalf("with task 7's lease restored: granted %v (err %v); want nothing", granted, err)
	}
	if granted, err := s.Release(ctx, 1, 1, 7, 0); err != nil || len(granted) != 1 || granted[0].TaskID != 8 {
		t.Fatalf("release of task 7: granted %+v (err %v); want task 8", granted, err)
	}
}

func TestEpochInScriptExceptOnRedisCluster(t *testing.T) {
	tests := []struct {
		name   string
		client redis.UniversalClient
		want   bool
	}{
		// Neither client dials until used.
		{name: "single server", client: redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), want: true},
		{name: "cluster", client: redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}}), want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Cleanup(func() { _ = tc.client.Close() })
			d := NewDispatcher(&broker.Broker{Client: tc.client, Prefix: "test"}, time.Minute, Order{}, slog.New(slog.DiscardHandler))
			t.Cleanup(func() { _ = d.Close() })
			if got := d.slots.epochInScript; got != tc.want {
				t.Fatalf("epochInScript = %v, want %v", got, tc.want)
			}
			if got := d.slots.modelMarks; got == tc.want {
				t.Fatalf("modelMarks = %v, want %v", got, !tc.want)
			}
		})
	}
}

// byPriorityThenID sorts task ids as a parked queue of one caller hands
// out slots: higher priority first, then by id.
func byPriorityThenID(ids []int, prio func(int) int) []int {
	out := append([]int(nil), ids...)
	slices.SortFunc(out, func(a, b int) int {
		if pa, pb := prio(a), prio(b); pa != pb {
			return pb - pa // higher priority first
		}
		return a - b
	})
	return out
}

// TestParkedQueueOrderAcrossHeadAndTail: with more tasks parked than the
// head holds, slots still go out strictly by priority, then id; a task of
// higher priority parked later, or one parked again, takes its place;
// positions count across head and tail; a removed task never comes out.
func TestParkedQueueOrderAcrossHeadAndTail(t *testing.T) {
	s := newTestSlots(t)
	ctx := context.Background()
	const model = 3
	var items []admitItem
	for id := 1; id <= 3*headSize+5; id++ {
		items = append(items, admitItem{ID: id, Priority: 1 + id%3})
	}
	// Parked in two calls (one caller: FIFO is the order of parking, see
	// fairShare); the queue sorts them by priority.
	if _, granted, err := s.Admit(ctx, model, 0, items[:40]); err != nil || len(granted) != 0 {
		t.Fatalf("admit with no slots: granted %v, err %v", granted, err)
	}
	if _, _, err := s.Admit(ctx, model, 0, items[40:]); err != nil {
		t.Fatal(err)
	}
	if n := s.rdb.ZCard(ctx, s.keys(model)[3]).Val(); n > headSize {
		t.Fatalf("head holds %d tasks, over headSize %d", n, headSize)
	}
	prio := func(id int) int {
		if id == 1000 { // the late task below
			return 3
		}
		return 1 + id%3
	}
	want := func(ids []int) []int { return byPriorityThenID(ids, prio) }
	var all []int
	for _, it := range items {
		all = append(all, it.ID)
	}
	order := want(all)
	// Positions count across head and tail.
	for _, pos := range []int{1, headSize, headSize + 1, len(order)} {
		id := order[pos-1]
		st, err := s.StateOf(ctx, model, id)
		if err != nil || !st.Parked || st.Position != pos {
			t.Fatalf("task %d: state %+v (err %v), want parked at position %d", id, st, err, pos)
		}
	}
	// Cancel one in the tail; park a late top-priority task; take out and
	// put back the head's first task.
	removed := order[len(order)-3]
	if _, err := s.Release(ctx, model, 0, removed, 0); err != nil {
		t.Fatal(err)
	}
	late := admitItem{ID: 1000, Priority: 3}
	if _, _, err := s.Admit(ctx, model, 0, []admitItem{late}); err != nil {
		t.Fatal(err)
	}
	first := order[0]
	if _, err := s.Release(ctx, model, 0, first, 1+first%3); err != nil {
		t.Fatal(err)
	}
	held, err := s.Held(ctx, map[int][]int{model: {first, removed, late.ID, order[len(order)-1]}})
	if err != nil || !held.Present(first) || held.Present(removed) || !held.Present(late.ID) || !held.Present(order[len(order)-1]) {
		t.Fatalf("held %+v (err %v)", held, err)
	}
	expect := want(append(slices.DeleteFunc(slices.Clone(all), func(id int) bool { return id == removed }), late.ID))
	// Hand the slots out one at a time: one slot, released after each grant.
	var got []int
	next, err := s.Pump(ctx, model, 1)
	for err == nil && len(next) == 1 {
		got = append(got, next[0].TaskID)
		next, err = s.Release(ctx, model, 1, next[0].TaskID, 0)
	}
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, expect) {
		t.Fatalf("slots went to\n%v\nwant\n%v", got, expect)
	}
}

// TestReleaseManyHandsEverySlotOn: releasing several finished tasks in one
// call frees their leases and grants as many parked tasks, in order.
func TestReleaseManyHandsEverySlotOn(t *testing.T) {
	s := newTestSlots(t)
	ctx := context.Background()
	const model = 4
	items := []admitItem{{ID: 1, Priority: 2}, {ID: 2, Priority: 2}, {ID: 3, Priority: 2}, {ID: 4, Priority: 3}, {ID: 5, Priority: 2}}
	_, granted, err := s.Admit(ctx, model, 2, items[:2])
	if err != nil || len(granted) != 2 {
		t.Fatalf("admit: granted %v, err %v", granted, err)
	}
	if _, more, err := s.Admit(ctx, model, 2, items[2:]); err != nil || len(more) != 0 {
		t.Fatalf("admit with the model full: granted %v, err %v", more, err)
	}
	next, err := s.ReleaseMany(ctx, model, 2, []int{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	var ids []int
	for _, g := range next {
		ids = append(ids, g.TaskID)
	}
	if !slices.Equal(ids, []int{4, 3}) {
		t.Fatalf("released 1 and 2: granted %v, want [4 3] (priority, then id)", ids)
	}
	for _, id := range []int{1, 2} {
		if st, err := s.StateOf(ctx, model, id); err != nil || st.Leased || st.Parked {
			t.Fatalf("task %d after release: %+v (err %v)", id, st, err)
		}
	}
	if st, err := s.StateOf(ctx, model, 5); err != nil || !st.Parked || st.Position != 1 || st.Running != 2 {
		t.Fatalf("task 5: %+v (err %v), want parked first with 2 running", st, err)
	}
}

// TestWeightedOrderInsideAModel: with queue.strategy weighted (6/3/1), a
// model's freed slots go to the priority bands in weighted turns, FIFO
// within each band, across the parked queue's head and tail; strict order
// hands every high task out before any other. Breakage caught: a parked
// queue that is always strict (the low task came out last, 21st of 21).
func TestWeightedOrderInsideAModel(t *testing.T) {
	// 40 high tasks fill the head and spill into the tail, so the medium
	// and low tasks parked after them wait in the tail.
	var items []admitItem
	for id := 1; id <= 40; id++ {
		items = append(items, admitItem{ID: id, Priority: 3})
	}
	for id := 41; id <= 45; id++ {
		items = append(items, admitItem{ID: id, Priority: 2})
	}
	for id := 46; id <= 48; id++ {
		items = append(items, admitItem{ID: id, Priority: 1})
	}
	prio := map[int]int{}
	for _, it := range items {
		prio[it.ID] = it.Priority
	}
	handOut := func(t *testing.T, s *Slots) []int {
		t.Helper()
		ctx := context.Background()
		const model = 5
		if _, _, err := s.Admit(ctx, model, 0, items); err != nil {
			t.Fatal(err)
		}
		var got []int
		next, err := s.Pump(ctx, model, 1)
		for err == nil && len(next) == 1 {
			if next[0].Priority != prio[next[0].TaskID] {
				t.Fatalf("task %d granted at priority %d, want %d", next[0].TaskID, next[0].Priority, prio[next[0].TaskID])
			}
			got = append(got, next[0].TaskID)
			next, err = s.Release(ctx, model, 1, next[0].TaskID, 0)
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(items) {
			t.Fatalf("handed out %d tasks, want %d: %v", len(got), len(items), got)
		}
		return got
	}

	t.Run("weighted", func(t *testing.T) {
		s := newTestSlots(t)
		s.weights = Order{Weighted: true, High: 6, Medium: 3, Low: 1}.arg()
		got := handOut(t, s)
		// FIFO within each band.
		last := map[int]int{}
		for _, id := range got {
			if id < last[prio[id]] {
				t.Fatalf("band %d out of order: %v", prio[id], got)
			}
			last[prio[id]] = id
		}
		// Each turn of ten hand-offs while every band waits gives 6, 3, 1.
		count := map[int]int{}
		for _, id := range got[:10] {
			count[prio[id]]++
		}
		if count[3] != 6 || count[2] != 3 || count[1] != 1 {
			t.Fatalf("first ten hand-offs by priority %v, want 6 high, 3 medium, 1 low: %v", count, got)
		}
	})
	t.Run("strict", func(t *testing.T) {
		s := newTestSlots(t)
		got := handOut(t, s)
		want := make([]int, len(items))
		for i := range want {
			want[i] = i + 1
		}
		if !slices.Equal(got, want) {
			t.Fatalf("strict order handed out\n%v\nwant\n%v", got, want)
		}
	})
}

// TestDrainedHeadIsRefilledBeforeTheTailIsRead: hand-offs that drain the
// head of a parked queue leave the rest in the tail; the next task parked
// behind them refills the head first, so looks at the queue read the head
// (on the embedded Redis a read of the tail sorts the whole backlog), and
// slots still go out in order.
func TestDrainedHeadIsRefilledBeforeTheTailIsRead(t *testing.T) {
	for name, rdb := range heldClients(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := ownSlots(rdb, "refilltest")
			const model = 1
			k := s.keys(model)
			t.Cleanup(func() {
				if err := rdb.Del(context.Background(), k...).Err(); err != nil {
					t.Errorf("delete the test's keys: %v", err)
				}
			})
			// One slot: all park (head full, 9 in the tail), then task 1
			// takes the slot.
			var items []admitItem
			for id := 1; id <= headSize+9; id++ {
				items = append(items, admitItem{ID: id, Priority: 2})
			}
			if _, granted, err := s.Admit(ctx, model, 1, items); err != nil || len(granted) != 1 {
				t.Fatalf("admit: granted %v, err %v", granted, err)
			}
			// The head's other headSize-1 tasks are handed the slot one
			// after another: the head is drained, the tail keeps 9.
			got, cur := passOn(t, s, model, 1, headSize-1)
			if h, p := rdb.ZCard(ctx, k[3]).Val(), rdb.ZCard(ctx, k[0]).Val(); h != 0 || p != 9 {
				t.Fatalf("after draining: head %d, tail %d; want 0 and 9", h, p)
			}
			late := admitItem{ID: 1000, Priority: 2}
			if _, _, err := s.Admit(ctx, model, 1, []admitItem{late}); err != nil {
				t.Fatal(err)
			}
			if h, p := rdb.ZCard(ctx, k[3]).Val(), rdb.ZCard(ctx, k[0]).Val(); h != 10 || p != 0 {
				t.Fatalf("after parking one more: head %d, tail %d; want the head refilled (10 and 0)", h, p)
			}
			got = append(append(got, cur), handOffFrom(t, s, model, cur)...)
			want := make([]int, 0, len(items)+1)
			for _, it := range items {
				want = append(want, it.ID)
			}
			want = append(want, late.ID)
			if !slices.Equal(got, want) {
				t.Fatalf("slots went to\n%v\nwant\n%v", got, want)
			}
		})
	}
}

// TestABatchParksAsItsTasksOneByOne: admitting a batch in one script call
// (which reads each band's clock and each caller's tag once and parks the
// batch with a few ZADDs) leaves the same queue as admitting its tasks one
// call each: the same tasks held, the same fair-share tags, and slots
// handed out in the same order. The batch mixes callers, weights and
// priorities, repeats a task, names a parked task and a running one, and
// has tasks of a band whose clock ran before the band emptied.
func TestABatchParksAsItsTasksOneByOne(t *testing.T) {
	for name, rdb := range heldClients(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := ownSlots(rdb, "batchtest")
			const batched, single = 1, 2
			t.Cleanup(func() {
				for _, model := range []int{batched, single} { // one hash slot each
					if err := rdb.Del(context.Background(), s.keys(model)...).Err(); err != nil {
						t.Errorf("delete the test's keys: %v", err)
					}
				}
			})
			// A backlog over the head's size: 4 high tasks (run first,
			// leaving their band empty with its clock moved), then medium
			// and low ones from two callers.
			var backlog []admitItem
			backlog = append(backlog, flood("kA", 1, 1, 4, 3)...)
			backlog = append(backlog, flood("kA", 1, 10, headSize, 2)...)
			backlog = append(backlog, flood("kB", 2, 100, headSize/2, 2)...)
			backlog = append(backlog, flood("kB", 1, 200, 5, 1)...)
			var batch []admitItem
			batch = append(batch, flood("kC", 3, 300, 7, 2)...)
			batch = append(batch, flood("kA", 1, 400, 3, 3)...)
			batch = append(batch, flood("kD", 1, 500, 6, 1)...)
			batch = append(batch, flood("kB", 2, 600, 4, 2)...)
			batch = append(batch, flood("kE", 5, 700, headSize, 2)...)
			batch = append(batch, batch[2], backlog[len(backlog)-1]) // twice; already parked
			type outcome struct {
				held  []int
				fair  []redis.Z
				order []int
			}
			run := func(model int, admit func([]admitItem) ([]Grant, error)) outcome {
				t.Helper()
				_, granted, err := s.Admit(ctx, model, 1, backlog)
				if err != nil || len(granted) != 1 {
					t.Fatalf("model %d backlog: granted %v, err %v", model, granted, err)
				}
				_, running := passOn(t, s, model, granted[0].TaskID, 4) // the 4 high ones ran
				held, err := admit(append(batch, admitItem{ID: running, Priority: 2, Caller: "kA", Weight: 1}))
				if err != nil {
					t.Fatalf("model %d batch: %v", model, err)
				}
				var out outcome
				for _, h := range held {
					out.held = append(out.held, h.TaskID)
				}
				if out.fair, err = rdb.ZRangeWithScores(ctx, s.keys(model)[5], 0, -1).Result(); err != nil {
					t.Fatal(err)
				}
				out.order = append([]int{running}, handOffFrom(t, s, model, running)...)
				return out
			}
			one := run(batched, func(items []admitItem) ([]Grant, error) {
				held, _, err := s.Admit(ctx, batched, 1, items)
				return held, err
			})
			each := run(single, func(items []admitItem) ([]Grant, error) {
				var all []Grant
				for _, it := range items {
					held, _, err := s.Admit(ctx, single, 1, []admitItem{it})
					if err != nil {
						return nil, err
					}
					all = append(all, held...)
				}
				return all, nil
			})
			if !slices.Equal(one.held, each.held) || len(one.held) != 1 {
				t.Fatalf("held: batch %v, one by one %v; want the running task once", one.held, each.held)
			}
			if !slices.Equal(one.fair, each.fair) {
				t.Fatalf("fair-share tags: batch\n%v\none by one\n%v", one.fair, each.fair)
			}
			if !slices.Equal(one.order, each.order) {
				t.Fatalf("slots went to: batch\n%v\none by one\n%v", one.order, each.order)
			}
			if n := len(backlog) - 4 + len(batch) - 2; len(one.order) != n { // less the 4 that ran, the repeat and the parked one
				t.Fatalf("%d hand-offs, want every task once (%d)", len(one.order), n)
			}
		})
	}
}

// passOn releases the task holding model's one slot, cur, and then the
// next holder, n times in all, each release handing the slot on; it
// returns the tasks released, in turn, and the task holding it after that.
func passOn(t *testing.T, s *Slots, model, cur, n int) (released []int, holder int) {
	t.Helper()
	ctx := context.Background()
	for range n {
		next, err := s.Release(ctx, model, 1, cur, 0)
		if err != nil || len(next) != 1 {
			t.Fatalf("release %d: next %v, err %v", cur, next, err)
		}
		released = append(released, cur)
		cur = next[0].TaskID
	}
	return released, cur
}

// handOffFrom releases cur, then every task the slot goes to after it,
// and returns who got it in turn.
func handOffFrom(t *testing.T, s *Slots, model, cur int) []int {
	t.Helper()
	var got []int
	for {
		next, err := s.Release(context.Background(), model, 1, cur, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(next) == 0 {
			return got
		}
		cur = next[0].TaskID
		got = append(got, cur)
	}
}

// TestABatchIsParkedInAFewCommands: parking 500 tasks from 8 callers
// behind a backlog takes a few dozen Redis commands inside the admit
// script, not a dozen per task (miniredis counts the commands a script
// runs).
func TestABatchIsParkedInAFewCommands(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	s := &Slots{rdb: rdb, prefix: "test", ttl: time.Minute}
	ctx := context.Background()
	const model = 1
	items := func(from, n int) []admitItem {
		out := make([]admitItem, n)
		for i := range out {
			out[i] = admitItem{ID: from + i, Priority: 1 + i%3, Caller: fmt.Sprintf("k%d", i%8), Weight: 1 + i%2}
		}
		return out
	}
	if _, _, err := s.Admit(ctx, model, 1, items(1, 200)); err != nil {
		t.Fatal(err)
	}
	before := mr.CommandCount()
	if _, _, err := s.Admit(ctx, model, 1, items(1000, 500)); err != nil {
		t.Fatal(err)
	}
	n := mr.CommandCount() - before
	t.Logf("admitting 500 tasks ran %d commands", n)
	if n > 60 {
		t.Fatalf("admitting 500 tasks ran %d commands, want at most 60", n)
	}
}
