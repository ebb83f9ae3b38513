package scheduler_test

import (
	"testing"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/internal/scheduler"
)

// TestRouteWalksTheChainByBudget: with max_retries 1 (two attempts per
// model) on a chain of three models, attempts 1-2 run on the task's own
// model, 3-4 on the first fallback, 5-6 on the second, and the task may
// not try a seventh time. Attempts count from the last manual retry.
func TestRouteWalksTheChainByBudget(t *testing.T) {
	chain := []*ent.Model{{ID: 10}, {ID: 20}, {ID: 30}}
	rt := scheduler.NewRoute(chain, &ent.Task{MaxRetries: 1})
	for _, tt := range []struct {
		used    int // attempts made since the last manual retry
		current int // model of attempt used (0: none made yet counts as the first)
		next    int // model of attempt used+1
		more    bool
		movesOn bool
		onModel int // attempt used's number on its model
	}{
		{used: 0, current: 10, next: 10, more: true, movesOn: false, onModel: 0},
		{used: 1, current: 10, next: 10, more: true, movesOn: false, onModel: 1},
		{used: 2, current: 10, next: 20, more: true, movesOn: true, onModel: 2},
		{used: 3, current: 20, next: 20, more: true, movesOn: false, onModel: 1},
		{used: 4, current: 20, next: 30, more: true, movesOn: true, onModel: 2},
		{used: 5, current: 30, next: 30, more: true, movesOn: false, onModel: 1},
		{used: 6, current: 30, next: 30, more: false, movesOn: false, onModel: 2},
	} {
		// A manual retry raised AttemptBase to 4: counts start over.
		task := &ent.Task{MaxRetries: 1, AttemptBase: 4, Attempts: 4 + tt.used}
		if got := rt.Current(task).ID; got != tt.current {
			t.Errorf("used %d: Current = model %d, want %d", tt.used, got, tt.current)
		}
		if got := rt.Next(task).ID; got != tt.next {
			t.Errorf("used %d: Next = model %d, want %d", tt.used, got, tt.next)
		}
		if got := rt.More(tt.used); got != tt.more {
			t.Errorf("used %d: More = %v, want %v", tt.used, got, tt.more)
		}
		if got := rt.MovesOn(tt.used); got != tt.movesOn {
			t.Errorf("used %d: MovesOn = %v, want %v", tt.used, got, tt.movesOn)
		}
		if got := rt.OnModel(tt.used); got != tt.onModel {
			t.Errorf("used %d: OnModel = %d, want %d", tt.used, got, tt.onModel)
		}
	}
}

// TestRouteWithoutFallbacks: a lone model keeps every attempt, and the
// last model of a chain keeps them once the budget is spent.
func TestRouteWithoutFallbacks(t *testing.T) {
	rt := scheduler.NewRoute([]*ent.Model{{ID: 7}}, &ent.Task{MaxRetries: 0})
	for used := range 4 {
		task := &ent.Task{Attempts: used}
		if rt.Next(task).ID != 7 || rt.Current(task).ID != 7 || rt.MovesOn(used) {
			t.Errorf("used %d: Next %d Current %d MovesOn %v, want 7, 7, false", used, rt.Next(task).ID, rt.Current(task).ID, rt.MovesOn(used))
		}
		if want := used < 1; rt.More(used) != want {
			t.Errorf("used %d: More = %v, want %v", used, rt.More(used), want)
		}
	}
}
