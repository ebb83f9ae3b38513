// Package jobs dispatches and runs tasks on asynq.
//
// The database is the system of record; Redis holds only dispatch state:
//
//   - Each model has a slot set (a sorted set of leases, scored by expiry)
//     whose size never passes the model's max_workers, across every worker
//     process, and a parked queue (a sorted set scored by priority, then
//     task id, so FIFO holds within a priority) of tasks waiting for a slot.
//   - A task enters asynq only once it holds a slot, so a saturated or
//     offline model never fills the queues that other models' tasks go
//     through. asynq's three priority queues (high, medium, low; strict by
//     default, weighted by config) order runnable tasks across models.
//   - Slot moves are atomic Lua scripts: admitting parks the task and fills
//     free slots from the head of the parked queue; releasing a slot hands
//     it straight to the next parked task.
//   - A message carries when its task's slot was granted: the worker that
//     picks it up within a third of the lease TTL starts on that grant
//     instead of asking Redis again (see Worker.freshGrant).
//   - A running attempt renews its lease; a crashed worker's lease expires
//     and asynq's recoverer runs its task again, which then takes over.
//   - The reconciler compares the database with Redis and re-admits what
//     Redis lost (a flush, a failover, a crash between insert and enqueue).
//
// asynq task IDs equal database task IDs, so every enqueue is idempotent.
//
// Files, by part:
//
//   - the slot engine: slots.go (admit, release, heartbeat, backoff),
//     slots_marks.go (the epoch guard), slots_state.go (where a task
//     waits), release.go (slot releases batched in the background),
//     rdb_scripts.go (every Lua script; the keys are named in
//     internal/rediskeys);
//   - dispatch: dispatcher.go, payload.go (queue names, the message),
//     wake.go and waker.go (wake-ups of idle workers), selftest.go;
//   - the worker: worker.go (lifecycle), worker_task.go (the asynq
//     handler), worker_attempt.go (one attempt, step by step),
//     worker_wake.go, stream.go (output streaming);
//   - rate limits: slots_ratelimit.go (the buckets), worker_ratelimit.go
//     (waiting for them);
//   - retry policy: retry.go;
//   - background loops: reconciler.go (with lease.go, its leader lease)
//     and due.go, each started and stopped by its owner (Start, Stop).
package jobs
