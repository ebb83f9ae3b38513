package scheduler

import "slices"

// maxCallerStats bounds the callers the overview lists (the busiest).
const maxCallerStats = 100

// CallerStat is one caller's load over every model: its running and
// queued (pending) tasks, its weight, the part of the running tasks it
// holds and the part fair share aims at.
type CallerStat struct {
	Caller   string `json:"caller"`
	APIKeyID *int   `json:"api_key_id"`
	// Weight is the largest weight among the caller's open tasks (a task
	// keeps the weight its key had when it was submitted).
	Weight  int `json:"weight"`
	Running int `json:"running"`
	Queued  int `json:"queued"`
	// Share is the caller's part of every running task, 0..1.
	Share float64 `json:"share"`
	// FairShare is the caller's weight over the weights of every caller
	// with open tasks, 0..1: its part of the slots while they all compete
	// for one model within one priority.
	FairShare float64 `json:"fair_share"`
}

// OwnCallers keeps the lines of key owner (all when owner is nil): a
// submitter sees only its own key's load.
func OwnCallers(cs []CallerStat, owner *int) []CallerStat {
	if owner == nil {
		return cs
	}
	return slices.DeleteFunc(slices.Clone(cs), func(c CallerStat) bool { return c.APIKeyID == nil || *c.APIKeyID != *owner })
}
