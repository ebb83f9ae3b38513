// Package scheduler is the domain service: every rule of LLM Scheduler lives
// here. The REST handlers and GraphQL resolvers are thin adapters over it,
// and the workers in jobs move tasks through the same state machine.
//
// Service assembles four parts, each a type with its own dependencies and
// its own files:
//
//   - Tasks (tasks*.go): task intake and the task queries. Validation,
//     backpressure, budgets and idempotency on the way in; list, read,
//     cancel, retry; scheduled tasks coming due (AdmitDue); callback URLs
//     and webhook deliveries; the API keys tasks are submitted with; why a
//     pending task waits (Explain).
//   - Lifecycle (lifecycle*.go): the attempt lifecycle, the workers' side:
//     pick a task up, start an attempt, complete it, fail it (to retry or
//     for good), interrupt it, recover it from a lost worker; and the
//     fallback route its attempts walk (Route).
//   - ModelAdmin (models*.go): register, change and delete models; their
//     configs with secrets masked.
//   - Stats (stats*.go): dashboard counts, per-day statistics, health,
//     cost reports, caller loads and budget usage. It only reads.
//
// Where a task's state changes: only in machine (machine.go), the state
// machine the parts share. Its Transition is one conditional update per
// move (WHERE status and attempts are what the caller read), so two actors
// never both win; it publishes the event, and a terminal move of a task
// with a callback URL writes its webhook delivery in the same transaction
// (machine_webhooks.go). Tasks creates rows as pending (tasks.go) and moves
// them to cancelled or back to pending (tasks_control.go); Lifecycle moves
// them to running, completed, failed or back to pending (lifecycle.go, and
// its batched form in lifecycle_batch.go). domain.CanTransition says which
// moves are legal.
//
// Caches shared by the parts are types of their own: the model cache
// (modelcache.go), pending-task counts for backpressure (backlog.go), the
// counts over the whole tasks table (counts.go), API keys (keycache.go) and
// rows a worker picks up without reading them (fresh.go). Group commit,
// which batches the hot paths' statements, is in group.go; background.go
// owns the goroutines the service starts itself.
package scheduler
