// Package rediskeys names every Redis key and pub/sub channel the
// scheduler uses, in one place: what each holds, its Redis type, its TTL
// and its hash tag.
//
// prefix is redis.key_prefix (it may not hold braces). On Redis Cluster
// a key's hash slot comes from its hash tag, the part between the first
// "{" and the next "}", else from the whole name. A Lua script may only
// touch keys of one hash slot, so the keys one script takes share a tag:
// a model's keys carry the model's tag, and the marked-models set carries
// the epoch key's whole name as its tag. Keys no script takes together
// have no tag and land wherever their name hashes.
//
// The Lua scripts that take these keys are in jobs/rdb_scripts.go.
package rediskeys

import "strconv"

// Epoch is the reconciler's epoch key (string: unix ms of when it was
// set; no TTL; no hash tag). It exists while Redis holds the scheduler's
// dispatch state whole: after a flush or a failover that lost it, no
// slots are handed out until the reconciler has restored the running
// tasks' leases and set it again.
func Epoch(prefix string) string { return prefix + ":epoch" }

// Marked is the set of models ever marked (Redis Cluster; set of model
// ids; no TTL). Its hash tag is the epoch key's whole name, so one script
// reads both (jobs markScript).
func Marked(prefix string) string { return "{" + Epoch(prefix) + "}:marked" }

// ReconcilerLock is the reconciler's leader lease (string: the owner's
// token host:pid:random; TTL queue.leader_lease_ttl, renewed by its
// owner; no hash tag). The name is that of the per-round lock the lease
// replaced, so that old and new processes still exclude each other during
// a rolling upgrade.
func ReconcilerLock(prefix string) string { return prefix + ":reconciler:lock" }

// ReconcilerWindow is where the reconciler's walk of recently changed
// tasks has got to (string: unix ms; no TTL; no hash tag).
func ReconcilerWindow(prefix string) string { return prefix + ":reconciler:window" }

// ReconcilerSweep is the last task id the reconciler's sweep of pending
// tasks reached (string: a task id; no TTL; no hash tag).
func ReconcilerSweep(prefix string) string { return prefix + ":reconciler:sweep" }

// WakeArmed is the one wake key of a deployment on a single Redis server
// or Sentinel (string "1"; no TTL; no hash tag): idle workers set it when
// they stop polling, and whoever hands out a slot takes it (DEL) and
// publishes on WakeChannel. On Redis Cluster each model has its own
// (Model.Wake).
func WakeArmed(prefix string) string { return prefix + ":wake:armed" }

// WakeChannel is the pub/sub channel on which idle workers wait for a
// wake-up (empty messages).
func WakeChannel(prefix string) string { return prefix + ":wake" }

// Events is the pub/sub channel of the event bus (frames of task events
// and output chunks, see internal/events).
func Events(prefix string) string { return prefix + ":events" }

// Output is the list of one attempt's output chunks kept for late readers
// (list of JSON entries; TTL events.OutputLiveTTL after each chunk,
// shorter once the attempt ended or its outcome is stored; no hash tag).
func Output(prefix string, taskID, attempt int) string {
	return prefix + ":output:" + strconv.Itoa(taskID) + ":" + strconv.Itoa(attempt)
}

// AsynqOwner names, in a Redis database, the redis.key_prefix of the
// deployment whose asynq queues it holds (string; no TTL; no prefix:
// asynq's own keys cannot be prefixed, so neither can this one).
const AsynqOwner = "llm-scheduler:asynq-owner"

// AsynqPending is asynq's list of a queue's pending task ids (the key its
// dequeue script takes first; hash tag the queue name). asynq's
// internal/base.PendingKey, copied: the worker's self-test checks that
// the two agree (jobs/selftest.go).
func AsynqPending(queue string) string { return "asynq:{" + queue + "}:pending" }

// Model names the keys of one model's dispatch state. They all carry the
// model's hash tag {prefix:model:id}, so one slot script takes them all.
type Model struct{ tag string }

// ModelOf names model id's keys under prefix.
func ModelOf(prefix string, id int) Model {
	return Model{tag: "{" + prefix + ":model:" + strconv.Itoa(id) + "}"}
}

// Tag is the model's hash tag.
func (m Model) Tag() string { return m.tag }

// Parked is the tail of the model's parked queue (sorted set: task id,
// scored by band and fair-share tag; no TTL). Every task in the head
// ranks before every task here.
func (m Model) Parked() string { return m.tag + ":parked" }

// Leases is the model's slot leases (sorted set: task id, scored by the
// lease's expiry in unix ms; no TTL, expired members are dropped by the
// slot scripts).
func (m Model) Leases() string { return m.tag + ":leases" }

// Backoff is until when the model's dispatch backs off, after a 429 or
// over its rate limit (string: unix ms; TTL until then plus a second).
func (m Model) Backoff() string { return m.tag + ":backoff" }

// Head is the head of the model's parked queue (sorted set like Parked,
// at most jobs.headSize tasks; no TTL).
func (m Model) Head() string { return m.tag + ":head" }

// WRR is the model's weighted-order round-robin state and its bands'
// fair-share clocks (hash: fields "1".."3" the round robin's current
// weights, "v1".."v3" the bands' virtual times; no TTL).
func (m Model) WRR() string { return m.tag + ":wrr" }

// Fair is the callers' last fair-share tags (sorted set: member
// "band:caller", scored band*rankBand plus the tag; no TTL, members are
// dropped as their band's clock passes them).
func (m Model) Fair() string { return m.tag + ":fair" }

// Wake is the model's wake key on Redis Cluster (string "1"; no TTL),
// where WakeArmed would be in another hash slot than the model's keys.
func (m Model) Wake() string { return m.tag + ":wake" }

// Mark is the model's epoch marker on Redis Cluster (string: unix ms; no
// TTL): it exists while the model's lease set is whole, and a flush of
// the model's shard loses it with the leases.
func (m Model) Mark() string { return m.tag + ":mark" }

// RateRequests is the model's rpm bucket (string: the GCRA theoretical
// arrival time in ms; TTL until then plus a second).
func (m Model) RateRequests() string { return m.tag + ":rate:requests" }

// RateTokens is the model's tpm bucket (string, as RateRequests).
func (m Model) RateTokens() string { return m.tag + ":rate:tokens" }
