package scheduler

import (
	"sync"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/internal/domain"
)

// fresh keeps the rows of tasks this process just created until a worker
// of this process picks them up (PickupTask), so that the pickup of a new
// task reads nothing: on the bench that read was one statement in four.
//
// A row taken from here may be older than the database's: the task may
// have been cancelled (by another process) since. That is safe because
// nothing is decided on it that the start does not check again: the start
// is fenced on status and attempt count (fenceOf), and a task that is
// still pending with no attempt has, apart from timestamps, the row it was
// created with (only creation sets model, input, params, priority and
// limits; a retry of a never-run task resets nothing else). Anything else
// a worker does with the task reads the database.
type fresh struct {
	mu    sync.Mutex
	rows  map[int]*ent.Task
	order []int // insertion order, for eviction; may hold ids already taken
	next  int   // the slot of order the next insertion evicts
}

// Bounds of the cache: a process that only serves the API (its tasks run
// elsewhere) fills it and evicts the oldest; a task with a large input is
// not kept.
const (
	freshMax      = 4096
	freshMaxInput = 8 << 10
)

func newFresh() *fresh { return &fresh{rows: make(map[int]*ent.Task, freshMax)} }

// put keeps copies of new tasks' rows.
func (f *fresh) put(ts []*ent.Task) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, t := range ts {
		if t.Status != domain.StatusPending || t.Attempts != 0 || len(t.Prompt)+len(t.Params) > freshMaxInput {
			continue
		}
		c := *t
		c.Edges = ent.TaskEdges{}
		if len(f.order) < freshMax {
			f.order = append(f.order, t.ID)
		} else {
			delete(f.rows, f.order[f.next])
			f.order[f.next] = t.ID
			f.next = (f.next + 1) % freshMax
		}
		f.rows[t.ID] = &c
	}
}

// take removes and returns a task's row, if it is here.
func (f *fresh) take(id int) (*ent.Task, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.rows[id]
	if ok {
		delete(f.rows, id)
	}
	return t, ok
}

// forget drops a task's row: this process changed the task.
func (f *fresh) forget(id int) {
	f.mu.Lock()
	delete(f.rows, id)
	f.mu.Unlock()
}
