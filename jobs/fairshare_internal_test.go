package jobs

import (
	"context"
	"slices"
	"testing"
)

// handOff runs a model with one slot: it hands the slot out n times,
// releasing each grant before the next, and returns who got it in turn.
func handOff(t *testing.T, s *Slots, model, n int) []int {
	t.Helper()
	ctx := context.Background()
	var got []int
	next, err := s.Pump(ctx, model, 1)
	for err == nil && len(next) == 1 && len(got) < n {
		got = append(got, next[0].TaskID)
		next, err = s.Release(ctx, model, 1, next[0].TaskID, 0)
	}
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func flood(caller string, weight, from, n, priority int) []admitItem {
	items := make([]admitItem, n)
	for i := range items {
		items[i] = admitItem{ID: from + i, Priority: priority, Caller: caller, Weight: weight}
	}
	return items
}

// TestFairShareLetsASecondCallerIn: caller A floods a one-slot model with
// 200 tasks; caller B's task, parked after all of them, takes the slot
// within the next two hand-offs, its queue position says so, and A's
// tasks keep their order.
func TestFairShareLetsASecondCallerIn(t *testing.T) {
	s := newTestSlots(t)
	ctx := context.Background()
	const model = 11
	if _, granted, err := s.Admit(ctx, model, 1, flood("kA", 1, 1, 200, 2)); err != nil || len(granted) != 1 || granted[0].TaskID != 1 {
		t.Fatalf("A's flood: granted %v, err %v", granted, err)
	}
	const b = 1000
	if _, _, err := s.Admit(ctx, model, 1, flood("kB", 1, b, 1, 2)); err != nil {
		t.Fatal(err)
	}
	st, err := s.StateOf(ctx, model, b)
	if err != nil || !st.Parked || st.Position > 2 {
		t.Fatalf("B's task: %+v (err %v), want parked within the first 2", st, err)
	}
	if _, err := s.Release(ctx, model, 1, 1, 0); err != nil { // A's first ends
		t.Fatal(err)
	}
	// The slot went on at that release; keep handing it out.
	got := []int{}
	st, _ = s.StateOf(ctx, model, b)
	if st.Leased {
		got = append(got, b)
	}
	held, err := s.Held(ctx, map[int][]int{model: {2, 3}})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []int{2, 3} {
		if held.Leased(id) {
			got = append(got, id)
		}
	}
	if len(got) != 1 {
		t.Fatalf("after one release %v hold the slot, want one task", got)
	}
	rest := handOff(t, s, model, 3)
	order := append(slices.Clone(got), rest...)
	pos := -1
	for i, id := range order {
		if id == b {
			pos = i
		}
	}
	if pos < 0 || pos > 1 {
		t.Fatalf("after A's first task the slot went to %v; B's task %d should be within the first two", order, b)
	}
	// A's tasks keep FIFO around it.
	last := 1
	for _, id := range order {
		if id != b {
			if id <= last {
				t.Fatalf("A's tasks out of order: %v", order)
			}
			last = id
		}
	}
}

// TestFairShareFollowsWeights: with weights 3:1 the slot alternates close
// to 3:1 while both callers wait; a caller of weight 1 against one of
// weight 100 still progresses; each caller stays FIFO; priorities stay
// strict.
func TestFairShareFollowsWeights(t *testing.T) {
	s := newTestSlots(t)
	ctx := context.Background()
	const model = 12
	items := append(flood("kA", 3, 1, 300, 2), flood("kB", 1, 1001, 100, 2)...)
	items = append(items, flood("kC", 1, 5001, 2, 3)...) // high priority: first
	if _, _, err := s.Admit(ctx, model, 0, items); err != nil {
		t.Fatal(err)
	}
	got := handOff(t, s, model, 42)
	if got[0] != 5001 || got[1] != 5002 {
		t.Fatalf("high priority tasks did not go first: %v", got[:4])
	}
	var a, b, lastA, lastB int
	for _, id := range got[2:] {
		if id < 1001 {
			a++
			if id <= lastA {
				t.Fatalf("A out of order: %v", got)
			}
			lastA = id
		} else {
			b++
			if id <= lastB {
				t.Fatalf("B out of order: %v", got)
			}
			lastB = id
		}
	}
	if a != 30 || b != 10 {
		t.Fatalf("40 hand-offs went %d to A (weight 3) and %d to B (weight 1), want 30 and 10: %v", a, b, got)
	}

	const heavy = 13
	if _, _, err := s.Admit(ctx, heavy, 0, append(flood("kH", 100, 1, 500, 1), flood("kL", 1, 2001, 5, 1)...)); err != nil {
		t.Fatal(err)
	}
	got = handOff(t, s, heavy, 205)
	light := 0
	for _, id := range got {
		if id > 2000 {
			light++
		}
	}
	if light < 2 {
		t.Fatalf("the weight-1 caller got %d of 205 hand-offs against weight 100; it starves", light)
	}
}

// TestABandRunEmptyForgetsItsCallers: caller A parks 100 tasks behind a
// running one and cancels them all; once the band has run empty, A is not
// held back by the tags of tasks that never ran: A and B, arriving
// together, take turns (with the tags kept, B's three would all go first).
func TestABandRunEmptyForgetsItsCallers(t *testing.T) {
	s := newTestSlots(t)
	ctx := context.Background()
	const model = 14
	if _, granted, err := s.Admit(ctx, model, 1, flood("kA", 1, 1, 101, 2)); err != nil || len(granted) != 1 || granted[0].TaskID != 1 {
		t.Fatalf("A's flood: granted %v, err %v", granted, err)
	}
	for id := 2; id <= 101; id++ { // cancelled while parked
		if _, err := s.Release(ctx, model, 1, id, 0); err != nil {
			t.Fatal(err)
		}
	}
	if next, err := s.Release(ctx, model, 1, 1, 0); err != nil || len(next) != 0 { // the band is empty
		t.Fatalf("release the running task: next %v, err %v", next, err)
	}
	_, granted, err := s.Admit(ctx, model, 1, append(flood("kA", 1, 200, 3, 2), flood("kB", 1, 300, 3, 2)...))
	if err != nil || len(granted) != 1 {
		t.Fatalf("admit A and B: granted %v, err %v", granted, err)
	}
	got := append([]int{granted[0].TaskID}, handOffFrom(t, s, model, granted[0].TaskID)...)
	if want := []int{200, 300, 201, 301, 202, 302}; !slices.Equal(got, want) {
		t.Fatalf("slots went to %v, want A and B in turn %v", got, want)
	}
}
