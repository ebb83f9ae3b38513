package chaos

import (
	"testing"
	"time"
)

// fault is one injected fault and what it hit.
type fault struct {
	name, action string
	start, end   time.Time // end: process killed / service back
	worker       string    // killed worker's name in attempt records
}

// reExecution is an attempt that called a task's provider again after an
// earlier attempt had called it: what costs users money. The chaos models
// never fail, so every attempt after a task's first is one.
type reExecution struct {
	prev, next attemptRow
	// fault explains it (nil: nothing does): the earlier attempt was lost
	// to it.
	fault *fault
}

// reExecutions lists every attempt after a task's first (as is ordered by
// task and number) with the fault that explains it.
func reExecutions(as []attemptRow, faults []*fault) []reExecution {
	var out []reExecution
	for i := 1; i < len(as); i++ {
		if as[i].TaskID != as[i-1].TaskID {
			continue
		}
		r := reExecution{prev: as[i-1], next: as[i]}
		for _, f := range faults {
			if r.prev.Status == "lost" && f.cut(r.prev) {
				r.fault = f
				break
			}
		}
		out = append(out, r)
	}
	return out
}

// cut reports whether attempt a, lost, was lost to the fault: it ran on
// the killed worker, or it was open while the service was down.
func (f *fault) cut(a attemptRow) bool {
	if f.worker != "" {
		return a.Worker == f.worker && a.Started.Before(f.start)
	}
	return a.Finished != nil && !a.Finished.Before(f.start) && !a.Started.After(f.end)
}

// running counts the attempts open when the fault hit (for a kill, those
// of the killed worker).
func (f *fault) running(as []attemptRow) int {
	n := 0
	for _, a := range as {
		if (f.worker == "" || a.Worker == f.worker) && !a.Started.After(f.start) && (a.Finished == nil || a.Finished.After(f.start)) {
			n++
		}
	}
	return n
}

// TestReExecutionsNeedAFault: the chaos run's accounting of provider calls
// made twice. An attempt after a lost one is explained by the kill of the
// worker it ran on, or by a service outage it was open during; a re-run
// after a lost attempt that no fault touched, or after a failed one, is
// not. Breakage caught: counting every lost attempt as explained, or only
// lost attempts as re-executions.
func TestReExecutionsNeedAFault(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	ptr := func(tm time.Time) *time.Time { return &tm }
	kill := &fault{name: "kill", start: at(10), end: at(10), worker: "h:1"}
	outage := &fault{name: "redis", start: at(20), end: at(21)}
	faults := []*fault{kill, outage}
	as := []attemptRow{
		// Task 1: in flight on the killed worker, then run elsewhere.
		{TaskID: 1, Number: 1, Status: "lost", Worker: "h:1", Started: at(9), Finished: ptr(at(15))},
		{TaskID: 1, Number: 2, Status: "succeeded", Worker: "h:2", Started: at(15), Finished: ptr(at(16))},
		// Task 2: open during the outage, taken over after it.
		{TaskID: 2, Number: 1, Status: "lost", Worker: "h:2", Started: at(19), Finished: ptr(at(25))},
		{TaskID: 2, Number: 2, Status: "succeeded", Worker: "h:2", Started: at(25), Finished: ptr(at(26))},
		// Task 3: lost with no fault near it.
		{TaskID: 3, Number: 1, Status: "lost", Worker: "h:2", Started: at(30), Finished: ptr(at(35))},
		{TaskID: 3, Number: 2, Status: "succeeded", Worker: "h:2", Started: at(35), Finished: ptr(at(36))},
		// Task 4: failed, then run again: a provider call twice, no fault.
		{TaskID: 4, Number: 1, Status: "failed", Worker: "h:2", Started: at(19), Finished: ptr(at(21))},
		{TaskID: 4, Number: 2, Status: "succeeded", Worker: "h:2", Started: at(22), Finished: ptr(at(23))},
		// Task 5: once.
		{TaskID: 5, Number: 1, Status: "succeeded", Worker: "h:1", Started: at(1), Finished: ptr(at(2))},
	}
	want := map[int]*fault{1: kill, 2: outage, 3: nil, 4: nil}
	got := reExecutions(as, faults)
	if len(got) != len(want) {
		t.Fatalf("%d re-executions, want %d: %+v", len(got), len(want), got)
	}
	for _, r := range got {
		if f, ok := want[r.next.TaskID]; !ok || r.fault != f {
			t.Errorf("task %d: explained by %v, want %v", r.next.TaskID, r.fault, f)
		}
	}
	// Running when the fault hit: task 1's attempt on the killed worker;
	// tasks 2 and 4's attempts during the outage.
	if n := kill.running(as); n != 1 {
		t.Errorf("kill hit %d running attempts, want 1", n)
	}
	if n := outage.running(as); n != 2 {
		t.Errorf("outage hit %d running attempts, want 2", n)
	}
}
